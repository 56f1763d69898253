"""The official Tencent Cloud Python SDK (unmodified) against the emulator."""

import json
import time

import pytest
from tencentcloud.common import abstract_client, credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.cvm.v20170312 import cvm_client
from tencentcloud.cvm.v20170312 import models as cvm_models
from tencentcloud.sts.v20180813 import models as sts_models
from tencentcloud.sts.v20180813 import sts_client
from tencentcloud.tag.v20180813 import models as tag_models
from tencentcloud.tag.v20180813 import tag_client
from tencentcloud.vpc.v20170312 import models as vpc_models
from tencentcloud.vpc.v20170312 import vpc_client

from conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET

REGION = "ap-guangzhou"
ZONE = "ap-guangzhou-3"
PASSWORD = "Sdk-Pa55word!"


def clients(emulator, secret_id=ACCESS_KEY_ID, secret_key=ACCESS_KEY_SECRET):
    cred = credential.Credential(secret_id, secret_key)
    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=emulator.endpoint))
    return (
        cvm_client.CvmClient(cred, REGION, profile),
        vpc_client.VpcClient(cred, REGION, profile),
    )


def req(model, **fields):
    """A request model filled from plain fields, as a user of the SDK builds it."""
    r = model()
    r.from_json_string(json.dumps(fields))
    return r


def error_code(call):
    with pytest.raises(TencentCloudSDKException) as excinfo:
        call()
    return excinfo.value.get_code()


def wait_task(vpc, task_id):
    assert isinstance(task_id, str) and task_id.isdigit()
    deadline = time.monotonic() + 10
    while True:
        r = vpc.DescribeTaskResult(req(vpc_models.DescribeTaskResultRequest, TaskId=int(task_id)))
        assert r.TaskId == int(task_id)
        if r.Result == "SUCCESS":
            return
        assert r.Result == "RUNNING"
        assert time.monotonic() < deadline, "task never finished"
        time.sleep(0.05)


def address(vpc, address_id):
    r = vpc.DescribeAddresses(req(vpc_models.DescribeAddressesRequest, AddressIds=[address_id]))
    assert r.TotalCount == 1
    return r.AddressSet[0]


def instance(cvm, instance_id):
    r = cvm.DescribeInstances(req(cvm_models.DescribeInstancesRequest, InstanceIds=[instance_id]))
    return r.InstanceSet[0] if r.InstanceSet else None


def wait_state(cvm, instance_id, state):
    deadline = time.monotonic() + 10
    while True:
        i = instance(cvm, instance_id)
        if i is not None and i.InstanceState == state:
            return i
        assert time.monotonic() < deadline, f"{instance_id} never reached {state}"
        time.sleep(0.05)


def network(vpc):
    vpc_id = vpc.CreateVpc(
        req(vpc_models.CreateVpcRequest, VpcName="sdk", CidrBlock="10.0.0.0/16", Tags=[{"Key": "owner", "Value": "sdk-test"}])
    ).Vpc.VpcId
    subnet_id = vpc.CreateSubnet(
        req(vpc_models.CreateSubnetRequest, VpcId=vpc_id, SubnetName="sdk", CidrBlock="10.0.1.0/24", Zone=ZONE)
    ).Subnet.SubnetId
    sg_id = vpc.CreateSecurityGroup(
        req(vpc_models.CreateSecurityGroupRequest, GroupName="sdk", GroupDescription="sdk test group")
    ).SecurityGroup.SecurityGroupId
    return vpc_id, subnet_id, sg_id


def run_request(vpc_id, subnet_id, sg_id, **extra):
    fields = dict(
        Placement={"Zone": ZONE},
        InstanceType="S5.MEDIUM4",
        ImageId="img-sdk",
        SystemDisk={"DiskType": "CLOUD_PREMIUM", "DiskSize": 50},
        VirtualPrivateCloud={"VpcId": vpc_id, "SubnetId": subnet_id},
        SecurityGroupIds=[sg_id],
        InstanceName="sdk-vm",
        InstanceChargeType="POSTPAID_BY_HOUR",
        InternetAccessible={"InternetMaxBandwidthOut": 0, "PublicIpAssigned": False},
        InstanceCount=1,
        LoginSettings={"Password": PASSWORD},
        TagSpecification=[{"ResourceType": "instance", "Tags": [{"Key": "owner", "Value": "sdk-test"}]}],
    )
    fields.update(extra)
    return req(cvm_models.RunInstancesRequest, **fields)


def test_full_lifecycle(emulator):
    emulator.admin("reset", "POST")
    cvm, vpc = clients(emulator)
    cred = credential.Credential(ACCESS_KEY_ID, ACCESS_KEY_SECRET)
    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=emulator.endpoint))
    sts = sts_client.StsClient(cred, REGION, profile)
    tag = tag_client.TagClient(cred, "", profile)

    uin = sts.GetCallerIdentity(sts_models.GetCallerIdentityRequest()).AccountId
    assert uin.isdigit()
    regions = cvm.DescribeRegions(cvm_models.DescribeRegionsRequest())
    assert REGION in [r.Region for r in regions.RegionSet]
    zones = cvm.DescribeZones(cvm_models.DescribeZonesRequest())
    assert ZONE in [z.Zone for z in zones.ZoneSet]

    # Network: VPC, subnet, a regional security group and its policies.
    vpc_id, subnet_id, sg_id = network(vpc)
    assert vpc_id.startswith("vpc-") and len(vpc_id) == 12
    assert subnet_id.startswith("subnet-") and sg_id.startswith("sg-")
    found = vpc.DescribeVpcs(
        req(vpc_models.DescribeVpcsRequest, Filters=[{"Name": "tag:owner", "Values": ["sdk-test"]}], Offset="0", Limit="100")
    )
    assert found.TotalCount == 1 and found.VpcSet[0].VpcId == vpc_id
    assert found.VpcSet[0].TagSet[0].Key == "owner"
    subnets = vpc.DescribeSubnets(req(vpc_models.DescribeSubnetsRequest, Filters=[{"Name": "vpc-id", "Values": [vpc_id]}]))
    assert [s.SubnetId for s in subnets.SubnetSet] == [subnet_id]
    assert subnets.SubnetSet[0].Zone == ZONE

    ingress = [
        {"Protocol": "TCP", "Port": "22", "CidrBlock": "0.0.0.0/0", "Action": "ACCEPT", "PolicyDescription": "ssh"},
        {"Protocol": "TCP", "Port": "80", "CidrBlock": "10.0.0.0/8", "Action": "ACCEPT"},
    ]
    vpc.CreateSecurityGroupPolicies(
        req(vpc_models.CreateSecurityGroupPoliciesRequest, SecurityGroupId=sg_id, SecurityGroupPolicySet={"Ingress": ingress})
    )
    duplicate = req(
        vpc_models.CreateSecurityGroupPoliciesRequest, SecurityGroupId=sg_id, SecurityGroupPolicySet={"Ingress": ingress[:1]}
    )
    assert error_code(lambda: vpc.CreateSecurityGroupPolicies(duplicate)) == "UnsupportedOperation.DuplicatePolicy"
    policies = vpc.DescribeSecurityGroupPolicies(
        req(vpc_models.DescribeSecurityGroupPoliciesRequest, SecurityGroupId=sg_id)
    ).SecurityGroupPolicySet
    assert [(p.PolicyIndex, p.Protocol, p.Port, p.CidrBlock, p.Action) for p in policies.Ingress] == [
        (0, "TCP", "22", "0.0.0.0/0", "ACCEPT"),
        (1, "TCP", "80", "10.0.0.0/8", "ACCEPT"),
    ]
    assert policies.Ingress[0].PolicyDescription == "ssh"

    # An instance; a replay of its ClientToken creates nothing new.
    run = run_request(vpc_id, subnet_id, sg_id, ClientToken="sdk-run-1")
    ids = cvm.RunInstances(run).InstanceIdSet
    assert len(ids) == 1 and ids[0].startswith("ins-")
    instance_id = ids[0]
    assert cvm.RunInstances(run).InstanceIdSet == ids
    assert emulator.admin("resources")["counts"]["instances"] == 1
    calls = emulator.admin("calls?log=1")
    runs = [c for c in calls["log"] if c["action"] == "RunInstances"]
    assert runs and all(c["params"]["LoginSettings.Password"] == "***" for c in runs)
    assert PASSWORD not in json.dumps(calls)
    assert PASSWORD not in json.dumps(emulator.admin("resources"))

    assert instance(cvm, instance_id).InstanceState == "PENDING"
    running = wait_state(cvm, instance_id, "RUNNING")
    assert running.VirtualPrivateCloud.SubnetId == subnet_id
    assert running.PrivateIpAddresses[0].startswith("10.0.1.")
    assert not running.PublicIpAddresses
    assert running.Tags[0].Key == "owner"
    tagged = cvm.DescribeInstances(
        req(
            cvm_models.DescribeInstancesRequest,
            Filters=[{"Name": "tag:owner", "Values": ["sdk-test"]}, {"Name": "vpc-id", "Values": [vpc_id]}],
        )
    )
    assert tagged.TotalCount == 1 and tagged.InstanceSet[0].InstanceId == instance_id
    status = cvm.DescribeInstancesStatus(req(cvm_models.DescribeInstancesStatusRequest, InstanceIds=[instance_id]))
    assert status.InstanceStatusSet[0].InstanceState == "RUNNING"

    # Nothing that holds the instance can go.
    assert error_code(lambda: vpc.DeleteVpc(req(vpc_models.DeleteVpcRequest, VpcId=vpc_id))) == "ResourceInUse"
    assert error_code(lambda: vpc.DeleteSubnet(req(vpc_models.DeleteSubnetRequest, SubnetId=subnet_id))) == "ResourceInUse"
    assert (
        error_code(lambda: vpc.DeleteSecurityGroup(req(vpc_models.DeleteSecurityGroupRequest, SecurityGroupId=sg_id)))
        == "ResourceInUse"
    )

    # Tags of the live instance through the Tag API.
    resource = f"qcs::cvm:{REGION}:uin/{uin}:instance/{instance_id}"
    tagged = tag.TagResources(req(tag_models.TagResourcesRequest, ResourceList=[resource], Tags=[{"TagKey": "stage", "TagValue": "test"}]))
    assert not tagged.FailedResources
    mapping = tag.GetResources(req(tag_models.GetResourcesRequest, ResourceList=[resource])).ResourceTagMappingList
    assert {(t.TagKey, t.TagValue) for t in mapping[0].Tags} == {("owner", "sdk-test"), ("stage", "test")}
    tag.UnTagResources(req(tag_models.UnTagResourcesRequest, ResourceList=[resource], TagKeys=["stage"]))
    assert [t.Key for t in instance(cvm, instance_id).Tags] == ["owner"]
    missing = f"qcs::cvm:{REGION}:uin/{uin}:instance/ins-nothere"
    failed = tag.TagResources(req(tag_models.TagResourcesRequest, ResourceList=[missing], Tags=[{"TagKey": "k", "TagValue": "v"}]))
    assert failed.FailedResources[0].Resource == missing

    # EIP: every write is a task; only UNBIND can be associated or released.
    allocated = vpc.AllocateAddresses(
        req(
            vpc_models.AllocateAddressesRequest,
            AddressCount=1,
            InternetChargeType="BANDWIDTH_POSTPAID_BY_HOUR",
            InternetMaxBandwidthOut=5,
            Tags=[{"Key": "owner", "Value": "sdk-test"}],
            ClientToken="sdk-eip-1",
        )
    )
    eip_id = allocated.AddressSet[0]
    assert eip_id.startswith("eip-")
    assert address(vpc, eip_id).AddressStatus == "CREATING"
    wait_task(vpc, allocated.TaskId)
    eip = address(vpc, eip_id)
    assert (eip.AddressStatus, eip.Bandwidth) == ("UNBIND", 5)
    again = vpc.AllocateAddresses(
        req(vpc_models.AllocateAddressesRequest, InternetChargeType="BANDWIDTH_POSTPAID_BY_HOUR", InternetMaxBandwidthOut=5,
            Tags=[{"Key": "owner", "Value": "sdk-test"}], ClientToken="sdk-eip-1")
    )
    assert again.AddressSet == [eip_id]

    task = vpc.AssociateAddress(req(vpc_models.AssociateAddressRequest, AddressId=eip_id, InstanceId=instance_id)).TaskId
    assert address(vpc, eip_id).AddressStatus == "BINDING"
    release = req(vpc_models.ReleaseAddressesRequest, AddressIds=[eip_id])
    assert error_code(lambda: vpc.ReleaseAddresses(release)) == "InvalidAddressState"
    wait_task(vpc, task)
    eip = address(vpc, eip_id)
    assert (eip.AddressStatus, eip.InstanceId) == ("BIND", instance_id)
    assert instance(cvm, instance_id).PublicIpAddresses == [eip.AddressIp]
    by_instance = vpc.DescribeAddresses(
        req(vpc_models.DescribeAddressesRequest, Filters=[{"Name": "instance-id", "Values": [instance_id]}])
    )
    assert [a.AddressId for a in by_instance.AddressSet] == [eip_id]
    assert error_code(lambda: vpc.ReleaseAddresses(release)) == "InvalidAddressState"
    wait_task(vpc, vpc.ModifyAddressesBandwidth(
        req(vpc_models.ModifyAddressesBandwidthRequest, AddressIds=[eip_id], InternetMaxBandwidthOut=10)
    ).TaskId)
    assert address(vpc, eip_id).Bandwidth == 10
    wait_task(vpc, vpc.DisassociateAddress(req(vpc_models.DisassociateAddressRequest, AddressId=eip_id)).TaskId)
    assert address(vpc, eip_id).AddressStatus == "UNBIND"
    wait_task(vpc, vpc.ReleaseAddresses(release).TaskId)
    assert vpc.DescribeAddresses(req(vpc_models.DescribeAddressesRequest, AddressIds=[eip_id])).TotalCount == 0

    # Prices come from the model's price table.
    price = cvm.InquiryPriceRunInstances(
        req(
            cvm_models.InquiryPriceRunInstancesRequest,
            Placement={"Zone": ZONE},
            InstanceType="S5.MEDIUM4",
            InstanceChargeType="POSTPAID_BY_HOUR",
            InternetAccessible={"InternetChargeType": "BANDWIDTH_POSTPAID_BY_HOUR", "InternetMaxBandwidthOut": 10},
        )
    ).Price
    assert price.InstancePrice.ChargeUnit == "HOUR" and price.InstancePrice.UnitPrice > 0
    assert price.BandwidthPrice.UnitPrice > 0

    # Tear down to nothing.
    cvm.TerminateInstances(req(cvm_models.TerminateInstancesRequest, InstanceIds=[instance_id]))
    assert instance(cvm, instance_id) is None
    version = vpc.DescribeSecurityGroupPolicies(
        req(vpc_models.DescribeSecurityGroupPoliciesRequest, SecurityGroupId=sg_id)
    ).SecurityGroupPolicySet.Version
    vpc.DeleteSecurityGroupPolicies(
        req(
            vpc_models.DeleteSecurityGroupPoliciesRequest,
            SecurityGroupId=sg_id,
            SecurityGroupPolicySet={"Version": version, "Ingress": [{"PolicyIndex": 1}]},
        )
    )
    stale = req(
        vpc_models.DeleteSecurityGroupPoliciesRequest,
        SecurityGroupId=sg_id,
        SecurityGroupPolicySet={"Version": version, "Ingress": [{"PolicyIndex": 0}]},
    )
    assert error_code(lambda: vpc.DeleteSecurityGroupPolicies(stale)) == "UnsupportedOperation.VersionMismatch"
    vpc.DeleteSecurityGroup(req(vpc_models.DeleteSecurityGroupRequest, SecurityGroupId=sg_id))
    vpc.DeleteSubnet(req(vpc_models.DeleteSubnetRequest, SubnetId=subnet_id))
    vpc.DeleteVpc(req(vpc_models.DeleteVpcRequest, VpcId=vpc_id))
    assert emulator.admin("resources")["counts"]["total"] == 0


def test_prepaid_instances_go_to_the_recycle_bin(emulator):
    emulator.admin("reset", "POST")
    cvm, vpc = clients(emulator)
    vpc_id, subnet_id, sg_id = network(vpc)
    run = run_request(
        vpc_id,
        subnet_id,
        sg_id,
        InstanceChargeType="PREPAID",
        InstanceChargePrepaid={"Period": 1, "RenewFlag": "NOTIFY_AND_MANUAL_RENEW"},
        LoginSettings={"KeyIds": ["skey-sdk"]},
    )
    instance_id = cvm.RunInstances(run).InstanceIdSet[0]
    running = wait_state(cvm, instance_id, "RUNNING")
    assert running.InstanceChargeType == "PREPAID" and running.ExpiredTime
    bad_period = run_request(vpc_id, subnet_id, sg_id, InstanceChargeType="PREPAID", InstanceChargePrepaid={"Period": 13})
    assert error_code(lambda: cvm.RunInstances(bad_period)) == "InvalidPeriod"
    terminate = req(cvm_models.TerminateInstancesRequest, InstanceIds=[instance_id])
    cvm.TerminateInstances(terminate)
    assert instance(cvm, instance_id).InstanceState == "SHUTDOWN"
    # Still holds its IP: the network cannot go yet.
    assert error_code(lambda: vpc.DeleteVpc(req(vpc_models.DeleteVpcRequest, VpcId=vpc_id))) == "ResourceInUse"
    cvm.TerminateInstances(terminate)
    assert instance(cvm, instance_id) is None
    vpc.DeleteSecurityGroup(req(vpc_models.DeleteSecurityGroupRequest, SecurityGroupId=sg_id))
    # A VPC whose subnets are empty goes with them.
    vpc.DeleteVpc(req(vpc_models.DeleteVpcRequest, VpcId=vpc_id))
    assert emulator.admin("resources")["counts"]["total"] == 0


def test_pagination_and_ids_with_filters(emulator):
    emulator.admin("reset", "POST")
    cvm, vpc = clients(emulator)
    created = [
        vpc.CreateVpc(req(vpc_models.CreateVpcRequest, VpcName=f"page-{n}", CidrBlock=f"10.{n}.0.0/16")).Vpc.VpcId
        for n in range(5)
    ]
    seen = []
    for offset in ("0", "2", "4"):
        page = vpc.DescribeVpcs(req(vpc_models.DescribeVpcsRequest, Offset=offset, Limit="2"))
        assert page.TotalCount == 5
        seen += [v.VpcId for v in page.VpcSet]
    assert sorted(seen) == sorted(created)
    # The SDK models type VPC Offset/Limit as strings: an integer is refused.
    assert error_code(lambda: vpc.DescribeVpcs(req(vpc_models.DescribeVpcsRequest, Limit=2))) == "InvalidParameter"
    assert error_code(lambda: vpc.DescribeVpcs(req(vpc_models.DescribeVpcsRequest, Limit="101"))) == "InvalidParameterValue.Range"
    both = req(vpc_models.DescribeVpcsRequest, VpcIds=created[:1], Filters=[{"Name": "vpc-name", "Values": ["page-0"]}])
    assert error_code(lambda: vpc.DescribeVpcs(both)) == "InvalidParameter.Coexist"
    by_name = vpc.DescribeVpcs(req(vpc_models.DescribeVpcsRequest, Filters=[{"Name": "vpc-name", "Values": ["page-3"]}]))
    assert by_name.TotalCount == 1
    # CVM types them as integers.
    empty = cvm.DescribeInstances(req(cvm_models.DescribeInstancesRequest, Offset=0, Limit=100))
    assert (empty.TotalCount, empty.InstanceSet) == (0, [])
    both = req(cvm_models.DescribeInstancesRequest, InstanceIds=["ins-aaaaaaaa"], Filters=[{"Name": "zone", "Values": [ZONE]}])
    assert error_code(lambda: cvm.DescribeInstances(both)) == "InvalidParameterCombination"
    unknown = cvm.DescribeInstances(req(cvm_models.DescribeInstancesRequest, InstanceIds=["ins-aaaaaaaa"]))
    assert unknown.TotalCount == 0
    assert error_code(lambda: cvm.DescribeInstances(req(cvm_models.DescribeInstancesRequest, Limit=101))) == "InvalidParameterValueLimit"


def test_errors_reach_the_sdk(emulator):
    emulator.admin("reset", "POST")
    cvm, vpc = clients(emulator)
    assert error_code(lambda: vpc.DeleteVpc(req(vpc_models.DeleteVpcRequest, VpcId="vpc-nothere"))) == "InvalidVpcId.NotFound"
    assert error_code(lambda: vpc.CreateVpc(req(vpc_models.CreateVpcRequest, VpcName="x"))) == "MissingParameter"
    assert error_code(lambda: cvm.call_json("NoSuchAction", {})) == "InvalidAction"
    assert error_code(lambda: vpc.call_json("CreateVpc", {"VpcName": "x", "CidrBlock": "10.0.0.0/16", "Bogus": 1})) == "UnknownParameter"
    emulator.admin("faults", "PUT", {"throttleRate": 1.0})
    try:
        assert error_code(lambda: cvm.DescribeRegions(cvm_models.DescribeRegionsRequest())) == "RequestLimitExceeded"
    finally:
        emulator.admin("faults", "PUT", {"throttleRate": 0.0})
    emulator.admin("faults", "PUT", {"errorRate": 1.0})
    try:
        assert error_code(lambda: cvm.DescribeRegions(cvm_models.DescribeRegionsRequest())) == "InternalError"
    finally:
        emulator.admin("faults", "PUT", {"errorRate": 0.0})
    emulator.admin("quotas", "PUT", {"eips": 0})
    try:
        allocate = req(vpc_models.AllocateAddressesRequest, InternetMaxBandwidthOut=1)
        assert error_code(lambda: vpc.AllocateAddresses(allocate)) == "AddressQuotaLimitExceeded"
    finally:
        emulator.admin("reset", "POST")


def test_authentication_failures(emulator, monkeypatch):
    emulator.admin("reset", "POST")
    describe = cvm_models.DescribeRegionsRequest()
    wrong_key, _ = clients(emulator, secret_key="not-the-secret")
    assert error_code(lambda: wrong_key.DescribeRegions(describe)) == "AuthFailure.SignatureFailure"
    unknown_id, _ = clients(emulator, secret_id="AKIDunknown")
    assert error_code(lambda: unknown_id.DescribeRegions(describe)) == "AuthFailure.SecretIdNotFound"

    real_time, real_sleep = time.time, time.sleep

    class Skewed:
        """The SDK's clock, an hour slow."""

        @staticmethod
        def time():
            return real_time() - 3600

        sleep = staticmethod(real_sleep)

    cvm, _ = clients(emulator)
    monkeypatch.setattr(abstract_client, "time", Skewed)
    assert error_code(lambda: cvm.DescribeRegions(describe)) == "AuthFailure.SignatureExpire"
    monkeypatch.undo()
    assert cvm.DescribeRegions(describe).TotalCount > 0
    errors = emulator.admin("calls")["errors"]
    for code in ("AuthFailure.SignatureFailure", "AuthFailure.SecretIdNotFound", "AuthFailure.SignatureExpire"):
        assert errors.get(code) == 1


def test_clouds_do_not_see_each_other(emulator):
    from alibabacloud_tea_openapi.utils_models import Config
    from alibabacloud_vpc20160428 import models as ali_vpc_models
    from alibabacloud_vpc20160428.client import Client as AliVpcClient

    emulator.admin("reset", "POST")
    _, vpc = clients(emulator)
    tencent_vpc = vpc.CreateVpc(req(vpc_models.CreateVpcRequest, VpcName="tc", CidrBlock="10.0.0.0/16")).Vpc.VpcId
    ali = AliVpcClient(
        Config(access_key_id=ACCESS_KEY_ID, access_key_secret=ACCESS_KEY_SECRET, endpoint=emulator.endpoint, protocol="http", region_id="cn-hangzhou")
    )
    ali_vpc = ali.create_vpc(ali_vpc_models.CreateVpcRequest(region_id="cn-hangzhou", cidr_block="10.0.0.0/16")).body.vpc_id
    listed = ali.describe_vpcs(ali_vpc_models.DescribeVpcsRequest(region_id="cn-hangzhou")).body.vpcs.vpc
    assert [v.vpc_id for v in listed] == [ali_vpc]
    assert [v.VpcId for v in vpc.DescribeVpcs(vpc_models.DescribeVpcsRequest()).VpcSet] == [tencent_vpc]
    assert error_code(lambda: vpc.DeleteVpc(req(vpc_models.DeleteVpcRequest, VpcId=ali_vpc))) == "InvalidVpcId.NotFound"
    realms = {v["id"]: v["realm"] for v in emulator.admin("resources")["vpcs"]}
    assert realms == {tencent_vpc: "tencent", ali_vpc: "default"}


def test_zone_instance_configs_and_prices_for_placement(emulator):
    """DescribeZoneInstanceConfigInfos as placement reads it (SELL / SOLD_OUT per zone), and the
    default prices placement compares across clouds: A100 is cheaper on Tencent (GT4), T4 on
    Alibaba (gn6i); both in CNY per hour."""
    emulator.admin("reset", "POST")
    cvm, _ = clients(emulator)
    gpu = "GT4.4XLARGE96"

    def configs(*filters):
        r = cvm.DescribeZoneInstanceConfigInfos(
            req(
                cvm_models.DescribeZoneInstanceConfigInfosRequest,
                Filters=[{"Name": name, "Values": values} for name, values in filters],
            )
        )
        return r.InstanceTypeQuotaSet or []

    items = configs(("instance-type", [gpu]), ("instance-charge-type", ["POSTPAID_BY_HOUR"]))
    zones = {i.Zone: i for i in items}
    assert ZONE in zones and len(zones) == len(items) > 1
    assert all(z.startswith(REGION + "-") for z in zones)
    for i in items:
        assert (i.InstanceType, i.InstanceChargeType, i.Status) == (gpu, "POSTPAID_BY_HOUR", "SELL")
        assert i.StatusCategory == "EnoughStock"
        assert (i.InstanceFamily, i.Cpu, i.Memory) == ("GT4", 16, 96)
        assert i.Price.ChargeUnit == "HOUR" and i.Price.UnitPrice == 28.9
    both = configs(("zone", [ZONE]), ("instance-type", [gpu]))
    assert sorted(i.InstanceChargeType for i in both) == ["POSTPAID_BY_HOUR", "PREPAID"]

    emulator.admin("stock", "PUT", [{"instanceType": gpu, "zone": ZONE, "available": 0}])
    try:
        (item,) = configs(("zone", [ZONE]), ("instance-type", [gpu]), ("instance-charge-type", ["PREPAID"]))
        assert (item.Status, item.StatusCategory) == ("SOLD_OUT", "WithoutStock")
        others = configs(("instance-type", [gpu]), ("instance-charge-type", ["POSTPAID_BY_HOUR"]))
        assert all(i.Status == "SELL" for i in others if i.Zone != ZONE)
    finally:
        emulator.admin("stock", "PUT", [{"instanceType": gpu, "zone": ZONE, "available": None}])
    assert configs(("instance-type", ["NOPE.SMALL1"])) == []
    assert configs(("zone", ["ap-shanghai-2"]), ("instance-type", [gpu])) == []
    assert error_code(lambda: configs(("instance-type", [gpu]), ("bogus", ["x"]))) == "InvalidFilter"
    assert (
        error_code(lambda: cvm.call_json("DescribeZoneInstanceConfigInfos", {"Filters": [], "Bogus": 1}))
        == "UnknownParameter"
    )

    def hourly(instance_type):
        p = cvm.InquiryPriceRunInstances(
            req(
                cvm_models.InquiryPriceRunInstancesRequest,
                Placement={"Zone": ZONE},
                InstanceType=instance_type,
                InstanceChargeType="POSTPAID_BY_HOUR",
            )
        ).Price.InstancePrice
        assert p.ChargeUnit == "HOUR"
        return p.UnitPriceDiscount

    table = emulator.admin("prices")
    assert table["currency"] == "CNY"
    a100 = table["instanceHourly"]
    assert hourly("GT4.4XLARGE96") < a100["ecs.gn7-c12g1.3xlarge"]
    assert hourly("GN7.2XLARGE32") > a100["ecs.gn6i-c4g1.xlarge"]
    emulator.admin("prices", "PUT", {"instanceHourly": {gpu: 40.0}})
    try:
        assert hourly(gpu) > a100["ecs.gn7-c12g1.3xlarge"]
    finally:
        emulator.admin("prices", "PUT", {"instanceHourly": {gpu: a100[gpu]}})
    assert emulator.admin("calls")["byAction"]["DescribeZoneInstanceConfigInfos"] >= 7
