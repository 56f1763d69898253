#!/usr/bin/env bash
# Checks the Helm chart: its CRD templates are generated from crds/ (scripts/chart-crds.sh), `helm
# lint --strict` passes with the default, with every optional part on and sharded, and the `helm
# template` output is accepted by the real API server (`kubectl apply --dry-run=server`; the
# running control plane of scripts/control-plane.sh, started if needed). The RBAC itself is
# tested, with the chart's
# ServiceAccount identity, by tests/chart_rbac.rs. The PrometheusRule's rule groups pass `promtool
# check rules` (scripts/promtool.sh, built from its Go module); tests/observability.rs checks that
# every metric they and the dashboard use is exported.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CHART=charts/multicloud-ecs
# Helm built with `go install` assumes Kubernetes v1.20 unless told; match the control plane.
KUBE_VERSION=v1.34.4
NS=mce-chart-check

scripts/chart-crds.sh --check

HELM=$(scripts/helm.sh --path)
"$HELM" lint --strict "$CHART" --kube-version "$KUBE_VERSION"
ALL_ON=(--set serviceMonitor.enabled=true --set networkPolicy.enabled=true
  --set 'networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.name=monitoring'
  --set 'rbac.secretNamespaces={mce-chart-secrets-a,mce-chart-secrets-b}'
  --set crds.keep=false
  --set dashboards.enabled=true --set prometheusRule.enabled=true)
"$HELM" lint --strict "$CHART" --kube-version "$KUBE_VERSION" "${ALL_ON[@]}"
# Sharded: one replica per shard, the shard Leases' Role, the shards alert.
SHARDED=(--set sharding.shards=3)
"$HELM" lint --strict "$CHART" --kube-version "$KUBE_VERSION" "${ALL_ON[@]}" "${SHARDED[@]}"

# A replica count above one without leader election is refused.
if "$HELM" template x "$CHART" --kube-version "$KUBE_VERSION" --set leaderElection.enabled=false >/dev/null 2>&1; then
  echo "chart-check: 2 replicas without leader election must be refused" >&2
  exit 1
fi
# Sharded replicas need no leader election; zero shards is refused.
"$HELM" template x "$CHART" --kube-version "$KUBE_VERSION" --set leaderElection.enabled=false "${SHARDED[@]}" >/dev/null
if "$HELM" template x "$CHART" --kube-version "$KUBE_VERSION" --set sharding.shards=0 >/dev/null 2>&1; then
  echo "chart-check: sharding.shards=0 must be refused" >&2
  exit 1
fi

scripts/control-plane.sh up >/dev/null
export KUBECONFIG
KUBECONFIG=$(scripts/control-plane.sh kubeconfig)
for ns in "$NS" mce-chart-secrets-a mce-chart-secrets-b; do
  kubectl get namespace "$ns" >/dev/null 2>&1 || kubectl create namespace "$ns" >/dev/null
done

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$HELM" template mce "$CHART" -n "$NS" --kube-version "$KUBE_VERSION" >"$out/default.yaml"
# The ServiceMonitor needs the Prometheus Operator's CRD, which the control plane lacks: it is
# linted and rendered, not applied.
"$HELM" template mce "$CHART" -n "$NS" --kube-version "$KUBE_VERSION" "${ALL_ON[@]}" \
  --set serviceMonitor.enabled=false --set prometheusRule.enabled=false >"$out/all-on.yaml"
"$HELM" template mce "$CHART" -n "$NS" --kube-version "$KUBE_VERSION" "${ALL_ON[@]}" \
  --show-only templates/servicemonitor.yaml >"$out/servicemonitor.yaml"
grep -q '^kind: ServiceMonitor' "$out/servicemonitor.yaml"
# The PrometheusRule likewise (its CRD is missing too); its rule groups go through promtool.
"$HELM" template mce "$CHART" -n "$NS" --kube-version "$KUBE_VERSION" "${ALL_ON[@]}" \
  --show-only templates/prometheusrule.yaml >"$out/prometheusrule.yaml"
grep -q '^kind: PrometheusRule' "$out/prometheusrule.yaml"
awk '/^spec:/ {inside = 1; next} inside {sub(/^  /, ""); print}' "$out/prometheusrule.yaml" >"$out/rules.yaml"
scripts/promtool.sh check rules "$out/rules.yaml"
# The sharded variant of the rules (MulticloudEcsShardsUnowned instead of MulticloudEcsNoLeader).
"$HELM" template mce "$CHART" -n "$NS" --kube-version "$KUBE_VERSION" "${ALL_ON[@]}" "${SHARDED[@]}" \
  --show-only templates/prometheusrule.yaml >"$out/prometheusrule-sharded.yaml"
grep -q 'alert: MulticloudEcsShardsUnowned' "$out/prometheusrule-sharded.yaml"
awk '/^spec:/ {inside = 1; next} inside {sub(/^  /, ""); print}' "$out/prometheusrule-sharded.yaml" >"$out/rules-sharded.yaml"
scripts/promtool.sh check rules "$out/rules-sharded.yaml"
"$HELM" template mce "$CHART" -n "$NS" --kube-version "$KUBE_VERSION" "${SHARDED[@]}" >"$out/sharded.yaml"
grep -q -- '--shards=3' "$out/sharded.yaml"
grep -q 'grafana_dashboard: "1"' "$out/all-on.yaml"

for f in default all-on sharded; do
  echo "kubectl apply --dry-run=server ($f values):"
  kubectl apply --dry-run=server --server-side --force-conflicts --field-manager=chart-check -f "$out/$f.yaml"
done
echo "chart OK"
