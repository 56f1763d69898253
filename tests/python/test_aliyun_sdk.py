"""The official Alibaba Cloud Python SDKs (unmodified) against the emulator."""

import time

import pytest
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_tea_openapi.utils_models import Config
from alibabacloud_vpc20160428 import models as vpc_models
from alibabacloud_vpc20160428.client import Client as VpcClient

from conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET

REGION = "cn-hangzhou"
ZONE = "cn-hangzhou-i"


def config(emulator, secret=ACCESS_KEY_SECRET, signature_algorithm=None):
    cfg = Config(
        access_key_id=ACCESS_KEY_ID,
        access_key_secret=secret,
        endpoint=emulator.endpoint,
        protocol="http",
        region_id=REGION,
    )
    if signature_algorithm:
        cfg.signature_algorithm = signature_algorithm
    return cfg


def error_code(excinfo):
    return getattr(excinfo.value, "code", None)


def test_full_lifecycle(emulator):
    emulator.admin("reset", "POST")
    ecs = EcsClient(config(emulator))
    vpc = VpcClient(config(emulator))

    regions = ecs.describe_regions(ecs_models.DescribeRegionsRequest())
    assert any(r.region_id == REGION for r in regions.body.regions.region)

    tag = vpc_models.CreateVpcRequestTag(key="owner", value="sdk-test")
    created = vpc.create_vpc(
        vpc_models.CreateVpcRequest(region_id=REGION, cidr_block="10.0.0.0/16", vpc_name="sdk", tag=[tag], client_token="sdk-vpc-1")
    )
    vpc_id = created.body.vpc_id
    assert vpc_id.startswith("vpc-")
    again = vpc.create_vpc(
        vpc_models.CreateVpcRequest(region_id=REGION, cidr_block="10.0.0.0/16", vpc_name="sdk", tag=[tag], client_token="sdk-vpc-1")
    )
    assert again.body.vpc_id == vpc_id
    vpcs = vpc.describe_vpcs(
        vpc_models.DescribeVpcsRequest(region_id=REGION, tag=[vpc_models.DescribeVpcsRequestTag(key="owner", value="sdk-test")])
    )
    assert vpcs.body.total_count == 1
    assert vpcs.body.vpcs.vpc[0].vpc_id == vpc_id
    assert vpcs.body.vpcs.vpc[0].tags.tag[0].key == "owner"

    vsw_id = vpc.create_vswitch(
        vpc_models.CreateVSwitchRequest(region_id=REGION, vpc_id=vpc_id, zone_id=ZONE, cidr_block="10.0.1.0/24")
    ).body.v_switch_id
    vsws = vpc.describe_vswitches(vpc_models.DescribeVSwitchesRequest(region_id=REGION, vpc_id=vpc_id))
    assert vsws.body.v_switches.v_switch[0].v_switch_id == vsw_id

    sg_id = ecs.create_security_group(
        ecs_models.CreateSecurityGroupRequest(region_id=REGION, vpc_id=vpc_id, security_group_name="sdk", security_group_type="normal")
    ).body.security_group_id
    perm = ecs_models.AuthorizeSecurityGroupRequestPermissions(
        ip_protocol="tcp", port_range="22/22", source_cidr_ip="0.0.0.0/0", policy="accept", description="ssh"
    )
    ecs.authorize_security_group(ecs_models.AuthorizeSecurityGroupRequest(region_id=REGION, security_group_id=sg_id, permissions=[perm]))
    attr = ecs.describe_security_group_attribute(
        ecs_models.DescribeSecurityGroupAttributeRequest(region_id=REGION, security_group_id=sg_id)
    )
    rules = attr.body.permissions.permission
    assert len(rules) == 1 and rules[0].port_range == "22/22" and rules[0].source_cidr_ip == "0.0.0.0/0"
    sgs = ecs.describe_security_groups(
        ecs_models.DescribeSecurityGroupsRequest(region_id=REGION, security_group_ids=f'["{sg_id}"]')
    )
    assert sgs.body.security_groups.security_group[0].security_group_id == sg_id

    price = ecs.describe_price(
        ecs_models.DescribePriceRequest(region_id=REGION, resource_type="instance", instance_type="ecs.g7.large", price_unit="Hour")
    )
    assert price.body.price_info.price.trade_price > 0
    assert price.body.price_info.price.currency == "CNY"

    run = ecs.run_instances(
        ecs_models.RunInstancesRequest(
            region_id=REGION,
            zone_id=ZONE,
            instance_type="ecs.g7.large",
            image_id="ubuntu_22_04_x64_20G_alibase_20240101.vhd",
            v_switch_id=vsw_id,
            security_group_id=sg_id,
            instance_name="sdk-vm",
            password="Sdk-Test-Pass-1",
            system_disk=ecs_models.RunInstancesRequestSystemDisk(category="cloud_essd", size="40"),
            tag=[ecs_models.RunInstancesRequestTag(key="owner", value="sdk-test")],
            amount=1,
            client_token="sdk-run-1",
        )
    )
    ids = run.body.instance_id_sets.instance_id_set
    assert len(ids) == 1
    instance_id = ids[0]
    assert run.body.trade_price > 0

    status = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        described = ecs.describe_instances(
            ecs_models.DescribeInstancesRequest(region_id=REGION, instance_ids=f'["{instance_id}"]', max_results=10)
        )
        inst = described.body.instances.instance[0]
        status = inst.status
        if status == "Running":
            break
        time.sleep(0.1)
    assert status == "Running"
    assert inst.vpc_attributes.v_switch_id == vsw_id
    assert inst.vpc_attributes.private_ip_address.ip_address[0].startswith("10.0.1.")
    assert inst.security_group_ids.security_group_id == [sg_id]
    assert inst.tags.tag[0].tag_key == "owner"
    resources = emulator.admin("resources")
    assert "Sdk-Test-Pass-1" not in str(resources)
    assert resources["instances"][0]["passwordSet"] is True

    eip = vpc.allocate_eip_address(vpc_models.AllocateEipAddressRequest(region_id=REGION, bandwidth="5"))
    allocation_id = eip.body.allocation_id
    vpc.associate_eip_address(
        vpc_models.AssociateEipAddressRequest(region_id=REGION, allocation_id=allocation_id, instance_id=instance_id, instance_type="EcsInstance")
    )
    eips = vpc.describe_eip_addresses(vpc_models.DescribeEipAddressesRequest(region_id=REGION, allocation_id=allocation_id))
    assert eips.body.eip_addresses.eip_address[0].status == "InUse"
    assert eips.body.eip_addresses.eip_address[0].instance_id == instance_id
    inst = ecs.describe_instances(
        ecs_models.DescribeInstancesRequest(region_id=REGION, instance_ids=f'["{instance_id}"]')
    ).body.instances.instance[0]
    assert inst.eip_address.allocation_id == allocation_id and inst.eip_address.ip_address == eip.body.eip_address
    with pytest.raises(Exception) as excinfo:
        vpc.release_eip_address(vpc_models.ReleaseEipAddressRequest(region_id=REGION, allocation_id=allocation_id))
    assert error_code(excinfo) == "IncorrectEipStatus"
    vpc.modify_eip_address_attribute(
        vpc_models.ModifyEipAddressAttributeRequest(region_id=REGION, allocation_id=allocation_id, bandwidth="10")
    )
    vpc.unassociate_eip_address(
        vpc_models.UnassociateEipAddressRequest(region_id=REGION, allocation_id=allocation_id, instance_id=instance_id)
    )
    eips = vpc.describe_eip_addresses(vpc_models.DescribeEipAddressesRequest(region_id=REGION, allocation_id=allocation_id))
    assert eips.body.eip_addresses.eip_address[0].status == "Available"
    assert eips.body.eip_addresses.eip_address[0].bandwidth == "10"
    vpc.release_eip_address(vpc_models.ReleaseEipAddressRequest(region_id=REGION, allocation_id=allocation_id))

    with pytest.raises(Exception) as excinfo:
        vpc.delete_vpc(vpc_models.DeleteVpcRequest(region_id=REGION, vpc_id=vpc_id))
    assert error_code(excinfo) == "DependencyViolation.VSwitch"
    with pytest.raises(Exception) as excinfo:
        ecs.delete_instance(ecs_models.DeleteInstanceRequest(instance_id=instance_id))
    assert error_code(excinfo) == "IncorrectInstanceStatus"
    ecs.delete_instance(ecs_models.DeleteInstanceRequest(instance_id=instance_id, force=True))
    ecs.delete_security_group(ecs_models.DeleteSecurityGroupRequest(region_id=REGION, security_group_id=sg_id))
    vpc.delete_vswitch(vpc_models.DeleteVSwitchRequest(region_id=REGION, v_switch_id=vsw_id))
    vpc.delete_vpc(vpc_models.DeleteVpcRequest(region_id=REGION, vpc_id=vpc_id))

    counts = emulator.admin("resources")["counts"]
    assert counts["total"] == 0, counts
    calls = emulator.admin("calls")["byAction"]
    assert calls["RunInstances"] == 1 and calls["CreateVpc"] == 2


def test_errors_reach_the_sdk(emulator):
    vpc_bad = VpcClient(config(emulator, secret="wrong-secret"))
    with pytest.raises(Exception) as excinfo:
        vpc_bad.describe_vpcs(vpc_models.DescribeVpcsRequest(region_id=REGION))
    assert error_code(excinfo) == "SignatureDoesNotMatch"

    ecs = EcsClient(config(emulator))
    with pytest.raises(Exception) as excinfo:
        ecs.describe_instances(ecs_models.DescribeInstancesRequest(region_id=REGION, instance_ids='["i-missing"'))
    assert error_code(excinfo) == "InvalidParameter"
    with pytest.raises(Exception) as excinfo:
        ecs.delete_instance(ecs_models.DeleteInstanceRequest(instance_id="i-missing", force=True))
    assert error_code(excinfo) == "InvalidInstanceId.NotFound"


def test_v2_signature_from_the_sdk(emulator):
    """The SDK's older RPC path (HMAC-SHA1 `Signature` parameter) is accepted too."""
    emulator.admin("reset", "POST")
    vpc = VpcClient(config(emulator, signature_algorithm="v2"))
    created = vpc.create_vpc(vpc_models.CreateVpcRequest(region_id=REGION, cidr_block="192.168.0.0/16", vpc_name="v2 name*"))
    vpcs = vpc.describe_vpcs(vpc_models.DescribeVpcsRequest(region_id=REGION, vpc_id=created.body.vpc_id))
    assert vpcs.body.vpcs.vpc[0].vpc_name == "v2 name*"
    vpc.delete_vpc(vpc_models.DeleteVpcRequest(region_id=REGION, vpc_id=created.body.vpc_id))
    assert emulator.admin("resources")["counts"]["total"] == 0


def test_available_resource_and_prices_for_placement(emulator):
    """DescribeAvailableResource as placement reads it: zones offering a type, sold out at stock
    0; DescribePrice follows prices changed at run time (`PUT /_emulator/prices`)."""
    emulator.admin("reset", "POST")
    ecs = EcsClient(config(emulator))
    gpu = "ecs.gn7-c12g1.3xlarge"

    def stock(instance_type, zone_id=None, charge="PostPaid"):
        body = ecs.describe_available_resource(
            ecs_models.DescribeAvailableResourceRequest(
                region_id=REGION,
                destination_resource="InstanceType",
                instance_type=instance_type,
                zone_id=zone_id,
                instance_charge_type=charge,
                io_optimized="optimized",
            )
        ).body
        zones = (body.available_zones.available_zone if body.available_zones else None) or []
        out = {}
        for z in zones:
            assert z.region_id == REGION
            for resource in z.available_resources.available_resource:
                assert resource.type == "InstanceType"
                for s in resource.supported_resources.supported_resource:
                    assert s.value == instance_type
                    out[z.zone_id] = (z.status, z.status_category, s.status, s.status_category)
        return out

    zones = stock(gpu)
    assert ZONE in zones and len(zones) > 1
    assert all(v == ("Available", "WithStock", "Available", "WithStock") for v in zones.values())
    assert list(stock(gpu, ZONE, "PrePaid")) == [ZONE]

    emulator.admin("stock", "PUT", [{"instanceType": gpu, "zone": ZONE, "available": 0}])
    try:
        zones = stock(gpu)
        assert zones[ZONE] == ("SoldOut", "WithoutStock", "SoldOut", "WithoutStock")
        assert all(v[2] == "Available" for z, v in zones.items() if z != ZONE)
    finally:
        emulator.admin("stock", "PUT", [{"instanceType": gpu, "zone": ZONE, "available": None}])
    assert stock(gpu)[ZONE][2] == "Available"
    assert stock("ecs.not-a-type") == {}

    with pytest.raises(Exception) as excinfo:
        ecs.describe_available_resource(
            ecs_models.DescribeAvailableResourceRequest(
                region_id=REGION, destination_resource="InstanceType", instance_type=gpu, instance_charge_type="Spot"
            )
        )
    assert error_code(excinfo) == "InvalidParameter"

    def hourly(instance_type):
        price = ecs.describe_price(
            ecs_models.DescribePriceRequest(
                region_id=REGION,
                resource_type="instance",
                instance_type=instance_type,
                price_unit="Hour",
                system_disk=ecs_models.DescribePriceRequestSystemDisk(size=40),
            )
        ).body.price_info.price
        assert price.currency == "CNY"
        return price.trade_price

    before = emulator.admin("prices")
    assert before["currency"] == "CNY"
    base = hourly(gpu)
    try:
        table = emulator.admin("prices", "PUT", {"instanceHourly": {gpu: 50.0}})
        assert table["instanceHourly"][gpu] == 50.0
        assert table["instanceHourly"]["ecs.g7.large"] == before["instanceHourly"]["ecs.g7.large"]
        assert round(hourly(gpu) - base, 2) == round(50.0 - before["instanceHourly"][gpu], 2)
    finally:
        emulator.admin("prices", "PUT", {"instanceHourly": {gpu: before["instanceHourly"][gpu]}})
    assert hourly(gpu) == base
    assert emulator.admin("calls")["byAction"]["DescribeAvailableResource"] >= 6
