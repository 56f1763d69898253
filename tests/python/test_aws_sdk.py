"""The official AWS SDK for Python (boto3, unmodified) against the emulator's EC2 front end."""

import json
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET, REPO

REGION = "us-east-1"
ZONE = "us-east-1a"
AMI = "ami-0c7217cdde317cfec"
PUBLIC_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl sdk-test"
)
OURS = {"createdBy": "multicloud-ecs"}


def client(emulator, key=ACCESS_KEY_ID, secret=ACCESS_KEY_SECRET, service="ec2", region=REGION):
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=emulator.base,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        # No retries: each call is one request, so errors reach the test as the cloud sent them.
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def spec(kind, tags):
    return [{"ResourceType": kind, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]


def code(call):
    with pytest.raises(ClientError) as excinfo:
        call()
    return excinfo.value.response["Error"]["Code"]


def aws_resources(emulator):
    r = emulator.admin("resources")
    mine = {
        kind: [x for x in r[kind] if x.get("realm") == "aws"]
        for kind in ("vpcs", "subnets", "securityGroups", "instances", "eips")
    }
    mine["internetGateways"] = r["aws"]["internetGateways"]
    mine["keyPairs"] = r["aws"]["keyPairs"]
    return mine


def network(ec2, tags):
    """A VPC with an attached internet gateway and a default route, a subnet and a group."""
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16", TagSpecifications=spec("vpc", tags))["Vpc"]
    igw = ec2.create_internet_gateway(TagSpecifications=spec("internet-gateway", tags))["InternetGateway"]
    ec2.attach_internet_gateway(InternetGatewayId=igw["InternetGatewayId"], VpcId=vpc["VpcId"])
    subnet = ec2.create_subnet(
        VpcId=vpc["VpcId"], CidrBlock="10.20.1.0/24", AvailabilityZone=ZONE, TagSpecifications=spec("subnet", tags)
    )["Subnet"]
    sg = ec2.create_security_group(
        GroupName=f"group-{uuid.uuid4().hex[:8]}",
        Description="test",
        VpcId=vpc["VpcId"],
        TagSpecifications=spec("security-group", tags),
    )
    return vpc["VpcId"], igw["InternetGatewayId"], subnet, sg["GroupId"]


def teardown(ec2, vpc_id, igw_id, subnet_id, sg_id):
    ec2.delete_security_group(GroupId=sg_id)
    ec2.delete_subnet(SubnetId=subnet_id)
    ec2.detach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id)
    ec2.delete_internet_gateway(InternetGatewayId=igw_id)
    ec2.delete_vpc(VpcId=vpc_id)


def test_full_lifecycle_to_zero(emulator):
    ec2 = client(emulator)
    assert {r["RegionName"] for r in ec2.describe_regions()["Regions"]} >= {"us-east-1", "us-west-2"}
    zones = ec2.describe_availability_zones()["AvailabilityZones"]
    assert ZONE in [z["ZoneName"] for z in zones] and all(z["State"] == "available" for z in zones)
    offers = ec2.describe_instance_type_offerings(
        LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": ["p4d.24xlarge"]}]
    )["InstanceTypeOfferings"]
    assert ZONE in [o["Location"] for o in offers]

    tags = dict(OURS, lifecycle="full")
    vpc_id, igw_id, subnet, sg_id = network(ec2, tags)
    assert subnet["AvailableIpAddressCount"] == 251
    assert ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]["State"] == "available"
    found = ec2.describe_vpcs(Filters=[{"Name": "tag:lifecycle", "Values": ["full"]}])["Vpcs"]
    assert [v["VpcId"] for v in found] == [vpc_id]
    gw = ec2.describe_internet_gateways(InternetGatewayIds=[igw_id])["InternetGateways"][0]
    assert gw["Attachments"] == [{"State": "available", "VpcId": vpc_id}]
    table = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["RouteTables"][0]
    assert table["Associations"][0]["Main"] is True
    ec2.create_route(RouteTableId=table["RouteTableId"], DestinationCidrBlock="0.0.0.0/0", GatewayId=igw_id)
    routes = ec2.describe_route_tables(RouteTableIds=[table["RouteTableId"]])["RouteTables"][0]["Routes"]
    assert {(r["DestinationCidrBlock"], r["GatewayId"], r["State"]) for r in routes} == {
        ("10.20.0.0/16", "local", "active"),
        ("0.0.0.0/0", igw_id, "active"),
    }

    group = ec2.describe_security_groups(GroupIds=[sg_id])["SecurityGroups"][0]
    assert group["IpPermissionsEgress"][0]["IpProtocol"] == "-1"
    assert group["IpPermissionsEgress"][0]["IpRanges"] == [{"CidrIp": "0.0.0.0/0"}]
    rule = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
    added = ec2.authorize_security_group_ingress(GroupId=sg_id, IpPermissions=[rule])
    assert added["Return"] is True and added["SecurityGroupRules"][0]["CidrIpv4"] == "0.0.0.0/0"
    assert code(lambda: ec2.authorize_security_group_ingress(GroupId=sg_id, IpPermissions=[rule])) == (
        "InvalidPermission.Duplicate"
    )
    perms = ec2.describe_security_groups(GroupIds=[sg_id])["SecurityGroups"][0]["IpPermissions"]
    assert perms[0]["FromPort"] == 22 and perms[0]["IpRanges"] == [{"CidrIp": "0.0.0.0/0"}]

    key = ec2.import_key_pair(
        KeyName="sdk-key", PublicKeyMaterial=PUBLIC_KEY.encode(), TagSpecifications=spec("key-pair", tags)
    )
    assert key["KeyPairId"].startswith("key-")
    assert ec2.describe_key_pairs(KeyNames=["sdk-key"])["KeyPairs"][0]["KeyType"] == "ed25519"
    assert code(lambda: ec2.import_key_pair(KeyName="sdk-key", PublicKeyMaterial=PUBLIC_KEY.encode())) == (
        "InvalidKeyPair.Duplicate"
    )

    launch = dict(
        ImageId=AMI,
        InstanceType="g4dn.xlarge",
        MinCount=1,
        MaxCount=1,
        SubnetId=subnet["SubnetId"],
        SecurityGroupIds=[sg_id],
        KeyName="sdk-key",
        ClientToken=f"lifecycle-{uuid.uuid4()}",
        BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 100, "VolumeType": "gp3"}}],
        TagSpecifications=spec("instance", tags) + spec("volume", tags),
    )
    first = ec2.run_instances(**launch)
    instance = first["Instances"][0]
    iid = instance["InstanceId"]
    assert instance["State"] == {"Code": 0, "Name": "pending"}
    assert instance["PrivateIpAddress"] == "10.20.1.4"
    # The same token and parameters: the original reservation, nothing new.
    again = ec2.run_instances(**launch)
    assert again["ReservationId"] == first["ReservationId"]
    assert [i["InstanceId"] for i in again["Instances"]] == [iid]
    assert code(lambda: ec2.run_instances(**dict(launch, InstanceType="g5.xlarge"))) == "IdempotentParameterMismatch"
    by_token = ec2.describe_instances(Filters=[{"Name": "client-token", "Values": [launch["ClientToken"]]}])
    assert [i["InstanceId"] for r in by_token["Reservations"] for i in r["Instances"]] == [iid]

    ec2.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    described = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    assert described["State"] == {"Code": 16, "Name": "running"}
    assert described["KeyName"] == "sdk-key"
    assert {t["Key"]: t["Value"] for t in described["Tags"]} == tags
    assert described["BlockDeviceMappings"][0]["DeviceName"] == "/dev/sda1"

    eip = ec2.allocate_address(Domain="vpc", TagSpecifications=spec("elastic-ip", tags))
    assoc = ec2.associate_address(AllocationId=eip["AllocationId"], InstanceId=iid)["AssociationId"]
    address = ec2.describe_addresses(AllocationIds=[eip["AllocationId"]])["Addresses"][0]
    assert (address["InstanceId"], address["AssociationId"]) == (iid, assoc)
    described = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    assert described["PublicIpAddress"] == eip["PublicIp"]
    assert code(lambda: ec2.release_address(AllocationId=eip["AllocationId"])) == "InvalidIPAddress.InUse"
    assert code(lambda: ec2.detach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id)) == (
        "DependencyViolation"
    )
    ec2.disassociate_address(AssociationId=assoc)
    ec2.release_address(AllocationId=eip["AllocationId"])

    ec2.create_tags(Resources=[iid], Tags=[{"Key": "stage", "Value": "test"}])
    described_tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [iid]}])["Tags"]
    assert {"ResourceId": iid, "ResourceType": "instance", "Key": "stage", "Value": "test"} in described_tags
    ec2.delete_tags(Resources=[iid], Tags=[{"Key": "stage"}])
    assert "stage" not in {t["Key"] for t in ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [iid]}])["Tags"]}

    assert code(lambda: ec2.delete_security_group(GroupId=sg_id)) == "DependencyViolation"
    terminated = ec2.terminate_instances(InstanceIds=[iid])["TerminatingInstances"][0]
    assert terminated["CurrentState"]["Name"] == "shutting-down"
    assert ec2.terminate_instances(InstanceIds=[iid])["TerminatingInstances"][0]["InstanceId"] == iid
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[iid], WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    # Terminated instances stay visible; their token cannot launch again.
    assert code(lambda: ec2.run_instances(**launch)) == "IdempotentInstanceTerminated"

    ec2.delete_key_pair(KeyName="sdk-key")
    ec2.delete_route(RouteTableId=table["RouteTableId"], DestinationCidrBlock="0.0.0.0/0")
    teardown(ec2, vpc_id, igw_id, subnet["SubnetId"], sg_id)
    assert code(lambda: ec2.describe_vpcs(VpcIds=[vpc_id])) == "InvalidVpcID.NotFound"
    assert aws_resources(emulator) == {
        "vpcs": [],
        "subnets": [],
        "securityGroups": [],
        "instances": [],
        "eips": [],
        "internetGateways": [],
        "keyPairs": [],
    }


def test_error_codes(emulator):
    ec2 = client(emulator)
    assert code(lambda: client(emulator, secret="wrong-secret").describe_vpcs()) == "AuthFailure"
    assert code(lambda: client(emulator, key="AKIAUNKNOWN").describe_vpcs()) == "AuthFailure"
    assert code(lambda: ec2.describe_instances(InstanceIds=["i-0123456789abcdef0"])) == "InvalidInstanceID.NotFound"
    assert code(lambda: ec2.describe_vpcs(DryRun=True)) == "DryRunOperation"
    assert code(lambda: ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, SubnetId="subnet-0123456789abcdef0")) == (
        "InvalidSubnetID.NotFound"
    )
    tags = dict(OURS, lifecycle="errors")
    vpc_id, igw_id, subnet, sg_id = network(ec2, tags)
    # Without an internet gateway no address can be associated.
    ec2.detach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id)
    assert code(
        lambda: ec2.run_instances(
            ImageId=AMI, InstanceType="t3.micro", MinCount=1, MaxCount=1, SubnetId=subnet["SubnetId"], KeyName="nope"
        )
    ) == "InvalidKeyPair.NotFound"
    iid = ec2.run_instances(
        ImageId=AMI, InstanceType="t3.micro", MinCount=1, MaxCount=1, SubnetId=subnet["SubnetId"], SecurityGroupIds=[sg_id]
    )["Instances"][0]["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    eip = ec2.allocate_address(Domain="vpc")
    assert code(lambda: ec2.associate_address(AllocationId=eip["AllocationId"], InstanceId=iid)) == (
        "Gateway.NotAttached"
    )
    ec2.release_address(AllocationId=eip["AllocationId"])
    assert code(lambda: ec2.delete_vpc(VpcId=vpc_id)) == "DependencyViolation"
    ec2.stop_instances(InstanceIds=[iid])
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[iid], WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    ec2.terminate_instances(InstanceIds=[iid])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[iid], WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    ec2.attach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id)
    teardown(ec2, vpc_id, igw_id, subnet["SubnetId"], sg_id)


def test_stock_and_subnet_capacity(emulator):
    ec2 = client(emulator)
    vpc_id, igw_id, subnet, sg_id = network(ec2, dict(OURS, lifecycle="stock"))
    emulator.admin("stock", "PUT", [{"instanceType": "p5.48xlarge", "zone": ZONE, "available": 0}])
    try:
        launch = dict(ImageId=AMI, InstanceType="p5.48xlarge", MinCount=1, MaxCount=1, SubnetId=subnet["SubnetId"])
        assert code(lambda: ec2.run_instances(**launch)) == "InsufficientInstanceCapacity"
        offers = ec2.describe_instance_type_offerings(
            LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": ["p5.48xlarge"]}]
        )["InstanceTypeOfferings"]
        assert ZONE not in [o["Location"] for o in offers]
    finally:
        emulator.admin("stock", "PUT", [{"instanceType": "p5.48xlarge", "zone": ZONE, "available": None}])
    # A /28 has 11 usable addresses.
    small = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.20.9.0/28", AvailabilityZone=ZONE)["Subnet"]
    assert small["AvailableIpAddressCount"] == 11
    assert code(
        lambda: ec2.run_instances(ImageId=AMI, InstanceType="t3.micro", MinCount=12, MaxCount=12, SubnetId=small["SubnetId"])
    ) == "InsufficientFreeAddressesInSubnet"
    ec2.delete_subnet(SubnetId=small["SubnetId"])
    teardown(ec2, vpc_id, igw_id, subnet["SubnetId"], sg_id)


def test_paginator_walks_every_instance(emulator):
    ec2 = client(emulator)
    tags = dict(OURS, lifecycle="pages")
    vpc_id, igw_id, subnet, sg_id = network(ec2, tags)
    launched = ec2.run_instances(
        ImageId=AMI,
        InstanceType="t3.micro",
        MinCount=7,
        MaxCount=7,
        SubnetId=subnet["SubnetId"],
        TagSpecifications=spec("instance", tags),
    )["Instances"]
    ids = {i["InstanceId"] for i in launched}
    pages = list(
        ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "tag:lifecycle", "Values": ["pages"]}], PaginationConfig={"PageSize": 5}
        )
    )
    assert len(pages) == 2
    seen = [i["InstanceId"] for p in pages for r in p["Reservations"] for i in r["Instances"]]
    assert sorted(seen) == sorted(ids)
    ec2.terminate_instances(InstanceIds=sorted(ids))
    ec2.get_waiter("instance_terminated").wait(InstanceIds=sorted(ids), WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    teardown(ec2, vpc_id, igw_id, subnet["SubnetId"], sg_id)


def test_policy_enforcement(emulator):
    key, secret = "aws-policy-key", "aws-policy-secret"
    emulator.admin(f"credentials/{key}", "PUT", {"secret": secret})
    with open(REPO / "deploy" / "policies" / "aws-iam-policy.json") as f:
        emulator.admin(f"policies/{key}", "PUT", json.load(f))
    try:
        ec2 = client(emulator, key=key, secret=secret)
        admin = client(emulator)
        # Reads are allowed; DryRun tells permission apart.
        ec2.describe_vpcs()
        assert code(lambda: ec2.create_vpc(CidrBlock="10.30.0.0/16", DryRun=True, TagSpecifications=spec("vpc", OURS))) == (
            "DryRunOperation"
        )
        assert code(lambda: ec2.create_vpc(CidrBlock="10.30.0.0/16", DryRun=True)) == "UnauthorizedOperation"
        assert code(lambda: ec2.create_vpc(CidrBlock="10.30.0.0/16")) == "UnauthorizedOperation"
        # Creates carry the operator's tags; changes touch only resources carrying them.
        vpc_id = ec2.create_vpc(CidrBlock="10.30.0.0/16", TagSpecifications=spec("vpc", OURS))["Vpc"]["VpcId"]
        foreign = admin.create_vpc(CidrBlock="10.31.0.0/16")["Vpc"]["VpcId"]
        assert code(lambda: ec2.delete_vpc(VpcId=foreign)) == "UnauthorizedOperation"
        assert code(lambda: ec2.create_tags(Resources=[foreign], Tags=[{"Key": "createdBy", "Value": "multicloud-ecs"}])) == (
            "UnauthorizedOperation"
        )
        ec2.delete_vpc(VpcId=vpc_id)
        admin.delete_vpc(VpcId=foreign)
        # The price list is readable.
        pricing = client(emulator, key=key, secret=secret, service="pricing")
        assert pricing.get_products(ServiceCode="AmazonEC2", MaxResults=1)["FormatVersion"] == "aws_v1"
    finally:
        emulator.admin(f"policies/{key}", "DELETE")
        emulator.admin(f"credentials/{key}", "DELETE")


def test_price_list(emulator):
    pricing = client(emulator, service="pricing")
    r = pricing.get_products(
        ServiceCode="AmazonEC2",
        Filters=[
            {"Type": "TERM_MATCH", "Field": "instanceType", "Value": "p4d.24xlarge"},
            {"Type": "TERM_MATCH", "Field": "regionCode", "Value": REGION},
            {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "Linux"},
            {"Type": "TERM_MATCH", "Field": "tenancy", "Value": "Shared"},
            {"Type": "TERM_MATCH", "Field": "preInstalledSw", "Value": "NA"},
            {"Type": "TERM_MATCH", "Field": "capacitystatus", "Value": "Used"},
        ],
    )
    assert len(r["PriceList"]) == 1
    product = json.loads(r["PriceList"][0])
    assert product["product"]["attributes"]["instanceType"] == "p4d.24xlarge"
    (term,) = product["terms"]["OnDemand"].values()
    (dimension,) = term["priceDimensions"].values()
    assert float(dimension["pricePerUnit"]["USD"]) == emulator.admin("prices")["instanceHourly"]["p4d.24xlarge"]
    assert code(lambda: client(emulator, secret="wrong", service="pricing").get_products(ServiceCode="AmazonEC2")) == (
        "InvalidSignatureException"
    )


def test_faults_are_aws_errors(emulator):
    ec2 = client(emulator)
    emulator.admin("faults", "PUT", {"throttleRate": 1.0, "actions": ["DescribeRegions"]})
    try:
        assert code(lambda: ec2.describe_regions()) == "RequestLimitExceeded"
    finally:
        emulator.admin("faults", "PUT", {"throttleRate": 0.0, "actions": []})
    emulator.admin("faults", "PUT", {"errorRate": 1.0, "actions": ["DescribeRegions"]})
    try:
        assert code(lambda: ec2.describe_regions()) == "InternalError"
    finally:
        emulator.admin("faults", "PUT", {"errorRate": 0.0, "actions": []})
    assert ec2.describe_regions()["Regions"]


def test_unsigned_key_material_is_not_logged(emulator):
    ec2 = client(emulator)
    created = ec2.create_key_pair(KeyName="made-here")
    assert created["KeyMaterial"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    log = emulator.admin("calls?log=1")["log"]
    assert all("PRIVATE KEY" not in json.dumps(c) for c in log)
    ec2.delete_key_pair(KeyName="made-here")
