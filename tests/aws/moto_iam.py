#!/usr/bin/env python3
"""What the AWS engine's e2e tests ask of moto, with boto3 (a real AWS client).

Usage (answers one JSON object on stdout):
  moto_iam.py setup <endpoint>          root IAM user (allow-all inline policy) with a key,
                                        a managed policy, a group and an assumable role
  moto_iam.py user <endpoint> <name>    what IAM holds for a user (or {"exists": false})
  moto_iam.py whoami <endpoint> <access key> <secret key> [<session token>]
                                        sts:GetCallerIdentity signed with those keys

The setup's first three calls are unauthenticated (moto runs with
INITIAL_NO_AUTH_ACTION_COUNT=3); every later call, Airlock's included, must be signed with
a key IAM knows, so moto checks signatures and refuses deleted keys. `user` signs with the
checker key (a second admin user) from AIRLOCK_TEST_AWS_KEY / AIRLOCK_TEST_AWS_SECRET.
"""

import json
import os
import sys

import boto3

ALLOW_ALL = json.dumps({"Version": "2012-10-17",
                        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
TRUST_ALL = json.dumps({"Version": "2012-10-17",
                        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"},
                                       "Action": "sts:AssumeRole"}]})


def client(service, url, key="unauthenticated", secret="unauthenticated", token=None):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret,
                        aws_session_token=token)


def setup(url):
    iam = client("iam", url)
    iam.create_user(UserName="airlock-root")
    iam.put_user_policy(UserName="airlock-root", PolicyName="all", PolicyDocument=ALLOW_ALL)
    key = iam.create_access_key(UserName="airlock-root")["AccessKey"]
    iam = client("iam", url, key["AccessKeyId"], key["SecretAccessKey"])
    policy = iam.create_policy(PolicyName="airlock-test", PolicyDocument=ALLOW_ALL)["Policy"]
    boundary = iam.create_policy(PolicyName="airlock-boundary", PolicyDocument=ALLOW_ALL)["Policy"]
    iam.create_group(GroupName="airlock-devs")
    # A second key for the checks, so they outlive a rotation of Airlock's.
    iam.create_user(UserName="airlock-checker")
    iam.put_user_policy(UserName="airlock-checker", PolicyName="all", PolicyDocument=ALLOW_ALL)
    checker = iam.create_access_key(UserName="airlock-checker")["AccessKey"]
    role = iam.create_role(RoleName="deployer", AssumeRolePolicyDocument=TRUST_ALL)["Role"]
    return {"access_key": key["AccessKeyId"], "secret_key": key["SecretAccessKey"],
            "policy_arn": policy["Arn"], "boundary_arn": boundary["Arn"],
            "group": "airlock-devs", "role_arn": role["Arn"],
            "checker_key": checker["AccessKeyId"], "checker_secret": checker["SecretAccessKey"]}


def user(url, name):
    iam = client("iam", url, os.environ["AIRLOCK_TEST_AWS_KEY"], os.environ["AIRLOCK_TEST_AWS_SECRET"])
    try:
        return describe_user(iam, name)
    except iam.exceptions.NoSuchEntityException:  # also when removed while being read
        return {"exists": False}


def describe_user(iam, name):
    u = iam.get_user(UserName=name)["User"]
    return {
        "exists": True,
        "arn": u["Arn"],
        "path": u["Path"],
        "boundary": u.get("PermissionsBoundary", {}).get("PermissionsBoundaryArn"),
        "tags": {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName=name)["Tags"]},
        "managed": [p["PolicyArn"] for p in
                    iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]],
        "inline": iam.list_user_policies(UserName=name)["PolicyNames"],
        "groups": [g["GroupName"] for g in iam.list_groups_for_user(UserName=name)["Groups"]],
        "keys": [k["AccessKeyId"] for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]],
    }


def whoami(url, key, secret, token=None):
    try:
        r = client("sts", url, key, secret, token).get_caller_identity()
        return {"ok": True, "arn": r["Arn"]}
    except Exception as e:  # the test asserts on the refusal
        return {"ok": False, "error": str(e)}


def main():
    cmd, url, *rest = sys.argv[1:]
    out = {"setup": setup, "user": user, "whoami": whoami}[cmd](url, *rest)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
