#!/usr/bin/python3
"""The seed's EC2 workflow driven by boto3 (Debian's python3-boto3) against a Stratus EC2 endpoint.

Run by tests/integration/boto3_test.cpp on a server whose embedded agent uses libvirt's test:///default driver.
Everything comes from the environment (nothing from the machine's AWS config):
  STRATUS_EC2_ENDPOINT   https://127.0.0.1:PORT
  STRATUS_CA_FILE        the CA that signed the endpoint's certificate
  AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY   the tenant's access key
  STRATUS_API, STRATUS_TOKEN   the main API and the same tenant's bearer token: each step checks that the objects
                               EC2 made or changed are the ones the Kubernetes-style API shows.
  STRATUS_SUBNET         the default Network's CIDR (the default subnet)
  STRATUS_WORKDIR         a scratch directory (ssh-keygen's output)

Each step prints "STEP <name>"; the first failure prints "FAILED <step>: <why>" and exits 1.
"""
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request

import boto3
import botocore.config
from botocore.exceptions import ClientError, WaiterError

STEP = "start"


def step(name):
    global STEP
    STEP = name
    print("STEP", name, flush=True)


def check(cond, why):
    if not cond:
        raise AssertionError(why)


def fast(max_attempts=120):
    # EC2's waiters poll every 15 s; the test driver answers within a second or two.
    return {"Delay": 1, "MaxAttempts": max_attempts}


def eventually(get, ok, seconds=60):
    """get() until ok(value), at most `seconds`; the last value."""
    deadline = time.monotonic() + seconds
    while True:
        value = get()
        if ok(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def stratus(path):
    """GET on the main API as the same tenant; None on 404."""
    ctx = ssl.create_default_context(cafile=os.environ["STRATUS_CA_FILE"])
    req = urllib.request.Request(os.environ["STRATUS_API"] + path,
                                 headers={"Authorization": "Bearer " + os.environ["STRATUS_TOKEN"]})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


NS = "/apis/stratus.io/v1/namespaces/default"


def by_ec2_id(plural, ec2_id):
    items = stratus(NS + "/" + plural + "?labelSelector=ec2.stratus.io/id%3D" + ec2_id)["items"]
    check(len(items) == 1, "%s %s: %d objects carry that id" % (plural, ec2_id, len(items)))
    return items[0]


def expect_error(code, fn, **kwargs):
    try:
        fn(**kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        check(got == code, "expected %s, got %s: %s" % (code, got, e))
        check(400 <= status < 500, "%s came with HTTP %d" % (code, status))
        return
    raise AssertionError("expected %s, the call succeeded" % code)


def main():
    cfg = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=10, read_timeout=60)
    ec2 = boto3.session.Session(region_name="us-east-1").client(
        "ec2", endpoint_url=os.environ["STRATUS_EC2_ENDPOINT"], verify=os.environ["STRATUS_CA_FILE"], config=cfg)
    work = os.environ["STRATUS_WORKDIR"]

    step("zones-and-images")
    zones = ec2.describe_availability_zones()["AvailabilityZones"]
    check([z["ZoneName"] for z in zones] == ["default"], "zones: %s" % zones)
    check(zones[0]["State"] == "available", zones)
    images = {i["Name"]: i for i in ec2.describe_images(Owners=["self"])["Images"]}
    check(images["disk"]["ImageId"].startswith("ami-"), images)
    check(images["k"]["ImageId"].startswith("aki-"), images)
    ami, aki = images["disk"]["ImageId"], images["k"]["ImageId"]
    ec2.get_waiter("image_available").wait(ImageIds=[ami], WaiterConfig=fast())

    step("key-pairs")
    made = ec2.create_key_pair(KeyName="generated", KeyType="ed25519")
    check(made["KeyMaterial"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----"), "private key returned once")
    check(made["KeyPairId"].startswith("key-"), made)
    keyfile = os.path.join(work, "laptop")
    subprocess.run(["/usr/bin/ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", keyfile], check=True)
    with open(keyfile + ".pub", "rb") as f:
        ec2.import_key_pair(KeyName="laptop", PublicKeyMaterial=f.read())
    ec2.get_waiter("key_pair_exists").wait(KeyNames=["generated", "laptop"], WaiterConfig=fast(30))
    pairs = {k["KeyName"]: k for k in ec2.describe_key_pairs()["KeyPairs"]}
    check(set(pairs) == {"generated", "laptop"}, pairs)
    check("KeyMaterial" not in pairs["generated"], "the private key is never shown again")
    check(stratus(NS + "/keypairs/laptop") is not None, "KeyPair laptop through the API")

    step("security-group")
    sg = ec2.create_security_group(GroupName="web", Description="web servers")["GroupId"]
    ec2.get_waiter("security_group_exists").wait(GroupIds=[sg], WaiterConfig=fast(30))
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
        {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "UserIdGroupPairs": [{"GroupId": sg}]}])
    expect_error("InvalidPermission.Duplicate", ec2.authorize_security_group_ingress, GroupId=sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    rules = []
    for page in ec2.get_paginator("describe_security_group_rules").paginate(
            Filters=[{"Name": "group-id", "Values": [sg]}], PaginationConfig={"PageSize": 5}):
        rules += page["SecurityGroupRules"]
    check(len([r for r in rules if not r["IsEgress"]]) == 2, rules)
    check(len(stratus(NS + "/securitygroups/web")["spec"]["ingress"]) == 2, "two ingress rules through the API")

    step("run-instances")
    expect_error("DryRunOperation", ec2.run_instances, ImageId=ami, MinCount=1, MaxCount=1, DryRun=True)
    expect_error("InvalidAMIID.Malformed", ec2.run_instances, ImageId="ami-nothex", MinCount=1, MaxCount=1)
    expect_error("InvalidAMIID.NotFound", ec2.run_instances, ImageId="ami-0123456789abcdef0", MinCount=1, MaxCount=1)
    launch = dict(ImageId=ami, KernelId=aki, MinCount=6, MaxCount=6, InstanceType="m1.small", KeyName="laptop",
                  SecurityGroupIds=[sg], ClientToken="boto3-launch-1",
                  TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "team", "Value": "boto3"}]}])
    run = ec2.run_instances(**launch)
    ids = sorted(i["InstanceId"] for i in run["Instances"])
    check(len(ids) == 6 and all(i.startswith("i-") for i in ids), run["Instances"])
    check(all(i["State"]["Name"] == "pending" and i["State"]["Code"] == 0 for i in run["Instances"]), run["Instances"])
    again = ec2.run_instances(**launch)  # the same ClientToken: the same instances, nothing new
    check(sorted(i["InstanceId"] for i in again["Instances"]) == ids, "ClientToken is idempotent")
    check(len(stratus(NS + "/instances")["items"]) == 6, "six Instances through the API")
    for i in ids:
        inst = by_ec2_id("instances", i)
        check(inst["spec"]["keyName"] == "laptop" and inst["spec"]["securityGroups"] == ["web"], inst["spec"])

    step("wait-running")
    ec2.get_waiter("instance_running").wait(InstanceIds=ids, WaiterConfig=fast())
    ec2.get_waiter("instance_status_ok").wait(InstanceIds=ids, WaiterConfig=fast())
    for i in ids:
        check(by_ec2_id("instances", i)["status"]["phase"] == "Running", i)

    step("describe-paginated")
    subnets = ec2.describe_subnets(Filters=[{"Name": "cidr-block", "Values": [os.environ["STRATUS_SUBNET"]]}])["Subnets"]
    check(len(subnets) == 1 and subnets[0]["DefaultForAz"], subnets)
    subnet = subnets[0]["SubnetId"]
    pages, seen = 0, {}
    for page in ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "tag:team", "Values": ["boto3"]}, {"Name": "instance-state-name", "Values": ["running"]}],
            PaginationConfig={"PageSize": 5}):
        pages += 1
        for res in page["Reservations"]:
            for i in res["Instances"]:
                seen[i["InstanceId"]] = i
    check(pages == 2, "6 instances in pages of 5: %d pages" % pages)
    check(sorted(seen) == ids, "every instance exactly once: %s" % sorted(seen))
    for i, desc in seen.items():
        # The node runs without networking (test driver): no NIC, so no private address, here or in the API.
        check(desc["SubnetId"] == subnet, "%s in the default subnet %s" % (desc, subnet))
        check(desc["KeyName"] == "laptop" and desc["SecurityGroups"][0]["GroupId"] == sg, desc)
        addrs = [a["ip"] for a in by_ec2_id("instances", i)["status"].get("addresses", [])]
        check(addrs == ([desc["PrivateIpAddress"]] if "PrivateIpAddress" in desc else []),
              "the API's addresses of %s: %s" % (i, addrs))

    step("volume")
    vol = ec2.create_volume(Size=1, AvailabilityZone="default",
                            TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "data"}]}])
    vol_id = vol["VolumeId"]
    ec2.get_waiter("volume_available").wait(VolumeIds=[vol_id], WaiterConfig=fast())
    check(stratus(NS + "/volumes/data")["spec"]["size"] == "1Gi", "Volume data through the API")

    step("tags")
    ec2.create_tags(Resources=[vol_id] + ids[:3], Tags=[{"Key": "owner", "Value": "alice"}])
    tagged = []
    for page in ec2.get_paginator("describe_tags").paginate(
            Filters=[{"Name": "key", "Values": ["owner"]}], PaginationConfig={"PageSize": 5}):
        tagged += [t["ResourceId"] for t in page["Tags"]]
    check(sorted(tagged) == sorted([vol_id] + ids[:3]), tagged)
    ec2.delete_tags(Resources=[vol_id], Tags=[{"Key": "owner"}])
    check("owner" not in json.loads(stratus(NS + "/volumes/data")["metadata"].get("annotations", {}).get(
        "ec2.stratus.io/tags", "{}")), "the tag left the Volume")

    # Stopped, an instance takes the volume into its definition (libvirt's test driver cannot hot-plug into a
    # running domain; the awscli e2e test attaches to a running TCG guest).
    step("stop-attach-detach-start")
    ec2.stop_instances(InstanceIds=[ids[1]])
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[ids[1]], WaiterConfig=fast())
    check(by_ec2_id("instances", ids[1])["spec"]["powerState"] == "Stopped", "powerState through the API")
    ec2.attach_volume(VolumeId=vol_id, InstanceId=ids[1], Device="/dev/sdf")
    ec2.get_waiter("volume_in_use").wait(VolumeIds=[vol_id], WaiterConfig=fast())
    # As in EC2, the volume is in-use from the request on; its attachment goes attaching -> attached.
    att = eventually(lambda: ec2.describe_volumes(VolumeIds=[vol_id])["Volumes"][0]["Attachments"],
                     lambda a: a and a[0]["State"] == "attached")
    check(len(att) == 1 and att[0]["InstanceId"] == ids[1] and att[0]["Device"] == "/dev/vdf", att)
    check(stratus(NS + "/volumes/data")["status"]["attachment"]["instance"] == by_ec2_id("instances", ids[1])["metadata"]["name"],
          "the API's Volume is attached to the same instance")
    expect_error("VolumeInUse", ec2.delete_volume, VolumeId=vol_id)
    ec2.detach_volume(VolumeId=vol_id)
    ec2.get_waiter("volume_available").wait(VolumeIds=[vol_id], WaiterConfig=fast())
    ec2.start_instances(InstanceIds=[ids[1]])
    ec2.get_waiter("instance_running").wait(InstanceIds=[ids[1]], WaiterConfig=fast())
    ec2.reboot_instances(InstanceIds=[ids[0]])
    ec2.get_console_output(InstanceId=ids[0])

    step("terminate")
    expect_error("InvalidInstanceID.Malformed", ec2.terminate_instances, InstanceIds=["i-nothex"])
    ec2.terminate_instances(InstanceIds=ids)
    ec2.get_waiter("instance_terminated").wait(InstanceIds=ids, WaiterConfig=fast())
    check(stratus(NS + "/instances")["items"] == [], "no Instances left through the API")
    gone = ec2.describe_instances(InstanceIds=ids)["Reservations"]
    check(all(i["State"]["Code"] == 48 for r in gone for i in r["Instances"]), "terminated instances stay visible")

    step("clean-up")
    ec2.delete_volume(VolumeId=vol_id)
    ec2.get_waiter("volume_deleted").wait(VolumeIds=[vol_id], WaiterConfig=fast())
    check(stratus(NS + "/volumes/data") is None, "the Volume left the API")
    ec2.delete_security_group(GroupId=sg)
    ec2.delete_key_pair(KeyName="laptop")
    ec2.delete_key_pair(KeyName="generated")
    check(ec2.describe_key_pairs()["KeyPairs"] == [], "no key pairs left")
    check(stratus(NS + "/securitygroups/web") is None, "the group left the API")
    step("done")


if __name__ == "__main__":
    try:
        main()
    except (AssertionError, ClientError, WaiterError, KeyError, IndexError) as e:
        print("FAILED %s: %s: %s" % (STEP, type(e).__name__, e), flush=True)
        sys.exit(1)
