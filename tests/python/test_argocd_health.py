"""Argo CD health checks (deploy/argocd/*.lua) run by a real Lua interpreter against sample objects.

Argo CD evaluates health scripts with gopher-lua (Lua 5.1 semantics), the object in the global `obj`,
the script's return value being `{status = ..., message = ...}`. lupa's Lua 5.1 runtime does the same
here. The operator's own classification of its reasons (`multicloud-ecs reasons`, from the `Reason`
enum in src/api/reason.rs) is the reference: every terminal reason must be Degraded and every
progress reason Progressing.
"""

import copy
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

try:
    from lupa import lua51 as lupa_runtime
except ImportError:  # a lupa build without the bundled 5.1
    import lupa as lupa_runtime

REPO = Path(__file__).resolve().parents[2]
ARGOCD = REPO / "deploy" / "argocd"
ECS = ARGOCD / "health-ecsinstance.lua"
UNET = ARGOCD / "health-usernetwork.lua"
ECSSET = ARGOCD / "health-ecsinstanceset.lua"
PQ = ARGOCD / "health-pricequote.lua"


def _operator_reasons() -> list[dict]:
    """`multicloud-ecs reasons`: every reason the operator writes, with its classification."""
    binary = os.environ.get("MCE_BIN", str(REPO / "target" / "debug" / "multicloud-ecs"))
    try:
        out = subprocess.run([binary, "reasons"], check=True, capture_output=True, timeout=30).stdout
    except FileNotFoundError as e:
        raise RuntimeError(f"{binary} not found: build it with `cargo build -p multicloud-ecs`") from e
    return json.loads(out)


REASONS = _operator_reasons()
ALL = {r["reason"] for r in REASONS}
TERMINAL = {r["reason"] for r in REASONS if r["terminal"]}
PROGRESS = {r["reason"] for r in REASONS if r["progress"]}
# Reasons the controllers retry on their own (cloud capacity, throttling, provider state): the
# object is still converging, so Argo CD should wait, not alarm.
# (ProviderPending, a provider not probed yet, is progress: no Warning event.)
RETRIED = ["Throttled", "OutOfStock", "QuotaExceeded", "ProviderUnavailable",
           "Transient", "KubeApiError", "CredentialsNotFound", "AuthenticationFailed"]


def _to_lua(lua, value):
    if isinstance(value, dict):
        t = lua.table()
        for k, v in value.items():
            t[k] = _to_lua(lua, v)
        return t
    if isinstance(value, list):
        t = lua.table()
        for i, v in enumerate(value, start=1):
            t[i] = _to_lua(lua, v)
        return t
    return value


def health(script: Path, obj: dict) -> tuple[str, str]:
    lua = lupa_runtime.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = _to_lua(lua, obj)
    result = lua.execute(script.read_text())
    assert result is not None, "the script must return a table"
    status, message = result["status"], result["message"]
    assert isinstance(message, str)
    return status, message


def condition(type_, status, reason, message="", generation=2):
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "observedGeneration": generation, "lastTransitionTime": "2026-01-01T00:00:00Z"}


def instance(phase=None, ready=None, generation=2, observed=2, with_status=True, deleting=False):
    obj = {"apiVersion": "ecs.multicloud.io/v1alpha1", "kind": "EcsInstance",
           "metadata": {"name": "gpu-box", "namespace": "ml-team", "generation": generation},
           "spec": {"provider": "ALIYUN", "userId": "u-1"}}
    if deleting:
        obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    if with_status:
        status = {"conditions": []}
        if observed is not None:
            status["observedGeneration"] = observed
        if phase is not None:
            status["phase"] = phase
        if ready is not None:
            status["conditions"] = [condition("InstanceReady", ready[0], ready[1], generation=observed),
                                    condition("Ready", ready[0], ready[1], "detail", observed)]
        obj["status"] = status
    return obj


def network(ready=None, generation=1, observed=1, with_status=True):
    obj = {"apiVersion": "ecs.multicloud.io/v1alpha1", "kind": "UserNetwork",
           "metadata": {"name": "net-u-1", "namespace": "ml-team", "generation": generation},
           "spec": {"provider": "ALIYUN", "userId": "u-1"}}
    if with_status:
        obj["status"] = {"observedGeneration": observed, "conditions": []}
        if ready is not None:
            obj["status"]["conditions"] = [condition("Ready", ready[0], ready[1], "detail", observed)]
    return obj


def instance_set(replicas=3, current=3, ready_replicas=3, updated=3, ready=None, generation=2,
                 observed=2, with_status=True, deleting=False):
    obj = {"apiVersion": "ecs.multicloud.io/v1alpha1", "kind": "EcsInstanceSet",
           "metadata": {"name": "pool", "namespace": "ml-team", "generation": generation},
           "spec": {"replicas": replicas, "template": {"spec": {"userId": "u-1"}}}}
    if deleting:
        obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    if with_status:
        obj["status"] = {"observedGeneration": observed, "replicas": current,
                         "readyReplicas": ready_replicas, "updatedReplicas": updated, "conditions": []}
        if ready is not None:
            obj["status"]["conditions"] = [condition("Ready", ready[0], ready[1], "detail", observed)]
    return obj


def test_reasons_come_from_the_operator():
    assert "CreateFailed" in TERMINAL and "PasswordInvalid" in TERMINAL and len(TERMINAL) >= 10
    assert PROGRESS >= {"Starting", "NetworkPending", "Provisioning", "Binding"}
    assert not TERMINAL & PROGRESS
    assert set(RETRIED) <= ALL - TERMINAL - PROGRESS


# A UserNetwork whose cloud refused the create needs a spec change; an EcsInstance waiting on such
# a network is still Pending (its phase is not Failed), so the reason is terminal for networks only.
NETWORK_ONLY_TERMINAL = {"NetworkCreateFailed"}


@pytest.mark.parametrize("script", [ECS, UNET, ECSSET])
def test_terminal_table_matches_the_operator(script):
    table = set(re.findall(r"^\s+([A-Za-z]+) = true,$", script.read_text(), re.M))
    extra = NETWORK_ONLY_TERMINAL if script == UNET else set()
    assert table <= ALL, f"{script.name} names reasons the operator never writes: {table - ALL}"
    assert table == TERMINAL | extra, f"{script.name} disagrees with `multicloud-ecs reasons`"


@pytest.mark.parametrize("reason", sorted(ALL))
def test_every_reason_is_classified_like_the_operator(reason):
    """Both scripts: terminal reasons Degraded, progress reasons Progressing, the rest Progressing
    while failing (the operator retries them) -- for a current generation in a non-Failed phase."""
    expected = "Degraded" if reason in TERMINAL else "Progressing"
    phase = "Provisioning" if reason in PROGRESS else "Pending"
    status, _ = health(ECS, instance(phase=phase, ready=("False", reason)))
    assert status == expected, f"EcsInstance Ready=False {reason}"
    expected = "Degraded" if reason in TERMINAL | NETWORK_ONLY_TERMINAL else "Progressing"
    status, _ = health(UNET, network(ready=("False", reason)))
    assert status == expected, f"UserNetwork Ready=False {reason}"
    expected = "Degraded" if reason in TERMINAL else "Progressing"
    status, _ = health(ECSSET, instance_set(ready=("False", reason), ready_replicas=1))
    assert status == expected, f"EcsInstanceSet Ready=False {reason}"


# ---- EcsInstance ----

def test_instance_without_status_is_progressing():
    assert health(ECS, instance(with_status=False))[0] == "Progressing"


def test_instance_ready_for_current_generation_is_healthy():
    status, message = health(ECS, instance(phase="Running", ready=("True", "Ready")))
    assert status == "Healthy"
    assert message.startswith("Ready")


def test_instance_ready_for_an_older_generation_is_progressing():
    obj = instance(phase="Running", ready=("True", "Ready"), generation=3, observed=2)
    status, message = health(ECS, obj)
    assert status == "Progressing"
    assert "generation 3" in message


def test_instance_status_without_observed_generation_is_progressing():
    assert health(ECS, instance(phase="Pending", ready=("True", "Ready"), observed=None))[0] == "Progressing"


def test_instance_status_without_ready_condition_is_progressing():
    assert health(ECS, instance(phase="Pending"))[0] == "Progressing"


@pytest.mark.parametrize("reason", sorted(PROGRESS | {"ProviderPending"}))
def test_instance_provisioning_is_progressing(reason):
    phase = "Provisioning" if reason in ("Starting", "Provisioning") else "Pending"
    status, message = health(ECS, instance(phase=phase, ready=("False", reason)))
    assert status == "Progressing"
    assert message.startswith(reason)


@pytest.mark.parametrize("reason", RETRIED)
def test_instance_retried_failure_is_progressing(reason):
    assert health(ECS, instance(phase="Pending", ready=("False", reason)))[0] == "Progressing"


def test_instance_running_with_ports_converging_is_progressing():
    obj = instance(phase="Running", ready=("False", "Binding"))
    assert health(ECS, obj)[0] == "Progressing"


@pytest.mark.parametrize("reason", sorted(TERMINAL))
def test_instance_terminal_reason_is_degraded(reason):
    status, message = health(ECS, instance(phase="Failed", ready=("False", reason)))
    assert status == "Degraded"
    assert message == f"{reason}: detail"
    # Even if the phase were not (yet) Failed, the reason alone decides.
    assert health(ECS, instance(phase="Pending", ready=("False", reason)))[0] == "Degraded"


def test_instance_phase_failed_is_degraded_without_conditions():
    assert health(ECS, instance(phase="Failed"))[0] == "Degraded"


def test_instance_terminal_failure_of_an_older_generation_is_degraded():
    obj = instance(phase="Failed", ready=("False", "UnknownImageKey"), generation=3, observed=2)
    assert health(ECS, obj)[0] == "Degraded"


def test_instance_being_deleted_is_progressing():
    obj = instance(phase="Deleting", ready=("False", "Deleting"), deleting=True)
    assert health(ECS, obj)[0] == "Progressing"


def test_instance_conditions_without_message():
    obj = instance(phase="Running", ready=("True", "Ready"))
    before = copy.deepcopy(obj)
    for c in obj["status"]["conditions"]:
        del c["message"]
    assert health(ECS, obj) == ("Healthy", "Ready")
    assert before["metadata"] == obj["metadata"]


# ---- UserNetwork ----

def test_network_without_status_is_progressing():
    assert health(UNET, network(with_status=False))[0] == "Progressing"


def test_network_ready_is_healthy():
    assert health(UNET, network(ready=("True", "NetworkReady")))[0] == "Healthy"


def test_network_ready_for_an_older_generation_is_progressing():
    assert health(UNET, network(ready=("True", "NetworkReady"), generation=2, observed=1))[0] == "Progressing"


@pytest.mark.parametrize("reason", ["Provisioning", "ProviderPending", "InUse", "Throttled", "QuotaExceeded",
                                    "ProviderUnavailable", "Transient", "Waiting"])
def test_network_in_progress_is_progressing(reason):
    assert health(UNET, network(ready=("False", reason)))[0] == "Progressing"


@pytest.mark.parametrize("reason", sorted(TERMINAL | {"NetworkCreateFailed"}))
def test_network_terminal_reason_is_degraded(reason):
    status, message = health(UNET, network(ready=("False", reason)))
    assert status == "Degraded"
    assert message.startswith(reason)


def test_network_being_deleted_is_progressing():
    obj = network(ready=("False", "InUse"))
    obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert health(UNET, obj)[0] == "Progressing"


# ---- EcsInstanceSet ----

def test_set_without_status_is_progressing():
    assert health(ECSSET, instance_set(with_status=False))[0] == "Progressing"


def test_set_all_ready_at_current_generation_is_healthy():
    status, message = health(ECSSET, instance_set(ready=("True", "Ready")))
    assert status == "Healthy"
    assert message == "3 of 3 ready"


def test_set_scaled_to_zero_is_healthy():
    assert health(ECSSET, instance_set(replicas=0, current=0, ready_replicas=0, updated=0))[0] == "Healthy"


def test_set_of_an_older_generation_is_progressing():
    obj = instance_set(ready=("True", "Ready"), generation=3, observed=2)
    status, message = health(ECSSET, obj)
    assert status == "Progressing"
    assert "generation 3" in message


@pytest.mark.parametrize("counts,reason", [
    ({"current": 2, "ready_replicas": 2, "updated": 2}, "ScalingUp"),
    ({"current": 5, "ready_replicas": 5, "updated": 5}, "ScalingDown"),
    ({"current": 4, "ready_replicas": 3, "updated": 1}, "RollingUpdate"),
    ({"current": 3, "ready_replicas": 3, "updated": 2}, "RollingUpdate"),
    ({"current": 3, "ready_replicas": 1, "updated": 3}, "ScalingUp"),
])
def test_set_scaling_or_rolling_is_progressing(counts, reason):
    status, message = health(ECSSET, instance_set(ready=("False", reason), **counts))
    assert status == "Progressing"
    assert message.startswith(reason)


def test_set_with_a_failed_child_is_degraded():
    obj = instance_set(ready=("False", "ChildFailed"), ready_replicas=2)
    obj["status"]["conditions"][0]["message"] = "EcsInstance pool-x7k2p failed: UnknownImageKey"
    status, message = health(ECSSET, obj)
    assert status == "Degraded"
    assert "UnknownImageKey" in message


def test_set_being_deleted_is_progressing():
    assert health(ECSSET, instance_set(deleting=True, ready=("True", "Ready")))[0] == "Progressing"


# ---- the shipped argocd-cm snippet ----

def test_argocd_cm_embeds_the_scripts_verbatim():
    cm = yaml.safe_load((ARGOCD / "argocd-cm.yaml").read_text())
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["name"] == "argocd-cm"
    data = cm["data"]
    assert data["resource.customizations.health.ecs.multicloud.io_EcsInstance"] == ECS.read_text()
    assert data["resource.customizations.health.ecs.multicloud.io_UserNetwork"] == UNET.read_text()
    assert data["resource.customizations.health.ecs.multicloud.io_EcsInstanceSet"] == ECSSET.read_text()
    assert data["resource.customizations.health.ecs.multicloud.io_PriceQuote"] == PQ.read_text()


# ---- PriceQuote ----

def price_quote(quoted=None, generation=1, observed=1):
    obj = {"metadata": {"generation": generation}}
    if quoted is not None:
        status, reason = quoted
        obj["status"] = {
            "observedGeneration": observed,
            "conditions": [{"type": "Quoted", "status": status, "reason": reason,
                            "message": "cheapest: ALIYUN cn-hangzhou at 35.36 CNY/h"}],
            "cheapest": {"provider": "ALIYUN", "hourly": "35.36"},
        }
    return obj


def test_quote_without_status_is_progressing():
    assert health(PQ, price_quote())[0] == "Progressing"


def test_quoted_for_current_generation_is_healthy():
    status, message = health(PQ, price_quote(("True", "Quoted")))
    assert status == "Healthy" and "cheapest: ALIYUN" in message


def test_quote_of_an_older_generation_is_progressing():
    assert health(PQ, price_quote(("True", "Quoted"), generation=2, observed=1))[0] == "Progressing"


def test_quote_failure_is_degraded():
    status, message = health(PQ, price_quote(("False", "QuoteFailed")))
    assert status == "Degraded" and message.startswith("QuoteFailed")


def test_quote_reasons_are_the_operators():
    assert {"Quoted", "QuoteFailed"} <= ALL
