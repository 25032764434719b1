#!/usr/bin/env python3
"""AWS SigV4 re-signing through the credential broker, against moto (an AWS emulator).

  aws_sigv4.py setup <moto url>   (run directly) an IAM user `brokered` with an allow-all
                                  policy and a key; prints {"access_key", "secret_key"}
  aws_sigv4.py                    (as the child of `airlock broker run`) the checks below

The child holds placeholder AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; moto checks every
request's signature against the keys IAM knows (INITIAL_NO_AUTH_ACTION_COUNT=3), so a request
that reaches it signed with the placeholder fails. Checks: sts get-caller-identity (the ARN is
the real key's user), S3 create/put/get/list, a multipart upload (boto3's transfer manager), an
upload with a CRC32 checksum (aws-chunked, unsigned trailer), a signed streaming upload
(STREAMING-AWS4-HMAC-SHA256-PAYLOAD, chunks signed here by hand), a presigned URL fetched
with requests, the AWS CLI (s3 cp/ls, sts), and blocks: a foreign key id, a service the
binding does not name, a request changed after signing, another endpoint (BROKER_TEST_MODE
inspect). Prints `ok NAME` / `FAIL NAME: reason`; exit 1 on any failure. Never prints a key.
"""
import datetime
import hashlib
import hmac
import io
import json
import os
import subprocess
import sys
import tempfile
import urllib.parse

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.exceptions
import requests
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

T = 15
ALLOW_ALL = json.dumps({"Version": "2012-10-17",
                        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


def setup(url):
    iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1", verify=False,
                       aws_access_key_id="unauthenticated", aws_secret_access_key="x")
    iam.create_user(UserName="brokered")
    iam.put_user_policy(UserName="brokered", PolicyName="all", PolicyDocument=ALLOW_ALL)
    k = iam.create_access_key(UserName="brokered")["AccessKey"]
    print(json.dumps({"access_key": k["AccessKeyId"], "secret_key": k["SecretAccessKey"]}))


def verify_presigned(host, target, secret):
    """Checks a presigned request line's signature with the real secret (as AWS would)."""
    path, _, query = target.partition("?")
    pairs = [tuple(urllib.parse.unquote(x) for x in (p.split("=", 1) + [""])[:2])
             for p in query.split("&") if p]
    q = dict(pairs)
    _, day, region, service, _ = q["X-Amz-Credential"].split("/")
    enc = lambda s: urllib.parse.quote(s, safe="-_.~")
    cq = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(pairs) if k != "X-Amz-Signature")
    assert q["X-Amz-SignedHeaders"] == "host", q["X-Amz-SignedHeaders"]
    creq = "\n".join(["GET", urllib.parse.quote(urllib.parse.unquote(path), safe="/~"), cq,
                      f"host:{host}\n", "host", "UNSIGNED-PAYLOAD"])
    scope = f"{day}/{region}/{service}/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", q["X-Amz-Date"], scope,
                     hashlib.sha256(creq.encode()).hexdigest()])
    k = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret).encode(), day), region), service), "aws4_request")
    want = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    ok = hmac.compare_digest(want, q["X-Amz-Signature"])
    print(json.dumps({"ok": ok, "key_id": q["X-Amz-Credential"].split("/")[0]}))


def _hmac(k, m):
    return hmac.new(k, m.encode(), hashlib.sha256).digest()


if len(sys.argv) > 4 and sys.argv[1] == "verify-presigned":
    verify_presigned(sys.argv[2], sys.argv[3], sys.argv[4])
    sys.exit(0)

if len(sys.argv) > 4 and sys.argv[1] == "users":
    import urllib3
    urllib3.disable_warnings()
    iam = boto3.client("iam", endpoint_url=sys.argv[2], region_name="us-east-1", verify=False,
                       aws_access_key_id=sys.argv[3], aws_secret_access_key=sys.argv[4])
    print(json.dumps([u["UserName"] for u in iam.list_users()["Users"]]))
    sys.exit(0)

if len(sys.argv) > 2 and sys.argv[1] == "setup":
    import urllib3
    urllib3.disable_warnings()
    setup(sys.argv[2])
    sys.exit(0)

MODE = os.environ.get("BROKER_TEST_MODE", "tunnel")
KEY = os.environ["AWS_ACCESS_KEY_ID"]
SECRET = os.environ["AWS_SECRET_ACCESS_KEY"]
BUCKET = "airlock-broker-test"
CFG = Config(region_name="us-east-1", s3={"addressing_style": "path"},
             retries={"max_attempts": 1}, connect_timeout=T, read_timeout=T)
failed = 0


def check(name, fn):
    global failed
    try:
        fn()
        print(f"ok {name}", flush=True)
    except Exception as e:  # noqa: BLE001 - reported by name
        failed += 1
        msg = str(e).replace(KEY, "<ph>").replace(SECRET, "<ph-secret>")
        print(f"FAIL {name}: {type(e).__name__}: {msg[:300]}", flush=True)


def s3():
    return boto3.client("s3", config=CFG)


def blocked(fn, reason_part):
    try:
        fn()
    except ClientError as e:
        st = e.response["ResponseMetadata"]["HTTPStatusCode"]
        assert st == 403, st
        return
    except Exception as e:  # noqa: BLE001 - e.g. ResponseParserError
        # Query-protocol clients cannot parse the broker's JSON answer; its text says why.
        assert "airlock broker: blocked" in str(e), str(e)[:200]
        return
    raise AssertionError(f"not blocked ({reason_part})")


def env():
    assert KEY.startswith("AKIA") and len(KEY) == 20, "placeholder key id shape"
    assert len(SECRET) == 40
    assert "AWS_SESSION_TOKEN" not in os.environ


EXPECT_USER = os.environ.get("EXPECT_USER", "brokered")


def user():
    return boto3.client("sts", config=CFG).get_caller_identity()["Arn"].rsplit("/", 1)[-1]


def whoami():
    u = user()
    assert u.startswith(EXPECT_USER), u


def rotation():
    """Leased credentials are replaced before their lease ends, without a restart."""
    import time
    first = user()
    deadline = time.time() + 20
    while time.time() < deadline:
        time.sleep(1)
        now = user()
        if now != first:
            assert now.startswith(EXPECT_USER), now
            return
    raise AssertionError("the leased credentials were not renewed")


def crud():
    c = s3()
    c.create_bucket(Bucket=BUCKET)
    c.put_object(Bucket=BUCKET, Key="a/hello world.txt", Body=b"hello through the broker")
    got = c.get_object(Bucket=BUCKET, Key="a/hello world.txt")["Body"].read()
    assert got == b"hello through the broker", got
    # (No Prefix: moto's signature check miscomputes requests with an encoded `/` in the query.)
    keys = [o["Key"] for o in c.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert "a/hello world.txt" in keys, keys


def multipart():
    data = os.urandom(12 * 1024 * 1024)
    c = s3()
    cfg = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024,
                         max_concurrency=2)
    c.upload_fileobj(io.BytesIO(data), BUCKET, "big.bin", Config=cfg)
    head = c.head_object(Bucket=BUCKET, Key="big.bin")
    assert head["ContentLength"] == len(data)
    assert "-" in head["ETag"], "not a multipart upload"
    got = c.get_object(Bucket=BUCKET, Key="big.bin")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


def checksum_trailer():
    c = s3()
    c.put_object(Bucket=BUCKET, Key="crc.txt", Body=b"x" * 100_000, ChecksumAlgorithm="CRC32")
    assert c.get_object(Bucket=BUCKET, Key="crc.txt")["Body"].read() == b"x" * 100_000


def signed_streaming():
    """PUT with STREAMING-AWS4-HMAC-SHA256-PAYLOAD, signed here as AWS documents it."""
    data = bytes(range(256)) * 800  # 204800 bytes
    chunk = 64 * 1024
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    scope = f"{day}/us-east-1/s3/aws4_request"
    pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)] + [b""]
    body_len = sum(len(f"{len(p):x};chunk-signature=") + 64 + 2 + len(p) + 2 for p in pieces)
    host = "s3.amazonaws.com"
    path = f"/{BUCKET}/streamed.bin"
    headers = {
        "content-encoding": "aws-chunked",
        "content-length": str(body_len),
        "host": host,
        "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "x-amz-date": amz_date,
        "x-amz-decoded-content-length": str(len(data)),
    }
    signed = ";".join(sorted(headers))
    creq = "\n".join(["PUT", path, "", "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
                      signed, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"])
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    k = _hmac(_hmac(_hmac(_hmac(("AWS4" + SECRET).encode(), day), "us-east-1"), "s3"), "aws4_request")
    seed = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    prev, body = seed, b""
    empty = hashlib.sha256(b"").hexdigest()
    for p in pieces:
        s = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, empty,
                       hashlib.sha256(p).hexdigest()])
        prev = hmac.new(k, s.encode(), hashlib.sha256).hexdigest()
        body += f"{len(p):x};chunk-signature={prev}\r\n".encode() + p + b"\r\n"
    assert len(body) == body_len
    out = dict(headers)
    del out["host"]
    out["authorization"] = (f"AWS4-HMAC-SHA256 Credential={KEY}/{scope}, SignedHeaders={signed}, "
                            f"Signature={seed}")
    r = requests.put(f"https://{host}{path}", data=body, headers=out, timeout=T)
    assert r.status_code == 200, (r.status_code, r.text[:200])
    got = s3().get_object(Bucket=BUCKET, Key="streamed.bin")["Body"].read()
    assert got == data, (len(got), len(data))
    # A chunk changed after signing is refused by the broker.
    bad = bytearray(body)
    bad[-200] ^= 1
    try:
        r = requests.put(f"https://{host}/{BUCKET}/tampered.bin", data=bytes(bad), headers=out, timeout=T)
        status = r.status_code
    except requests.RequestException:
        status = None
    assert status != 200, "a tampered chunk was accepted"


def presigned():
    # Moto cannot serve presigned URLs while it checks signatures (a 500 on the missing
    # Authorization header), so this goes to a second moto that does not check
    # (eu-west-1); the test checks the re-signed URL from that moto's request log.
    c = boto3.client("s3", config=CFG.merge(Config(region_name="eu-west-1", signature_version="s3v4")))
    c.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    c.put_object(Bucket=BUCKET, Key="p.txt", Body=b"presigned body")
    url = c.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "p.txt"},
                                   ExpiresIn=300)
    assert "X-Amz-Credential=" + KEY in url or KEY in urllib.parse.unquote(url)
    r = requests.get(url, timeout=T)
    assert r.status_code == 200 and r.content == b"presigned body", r.status_code
    # Signature Version 2 (boto3's default for S3 presigned URLs) cannot be re-signed: blocked.
    v2 = boto3.client("s3", config=CFG.merge(Config(region_name="eu-west-1", signature_version="s3")))
    url = v2.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "p.txt"},
                                    ExpiresIn=300)
    assert "AWSAccessKeyId=" in url
    r = requests.get(url, timeout=T)
    assert r.status_code == 403 and "Signature Version 2" in r.text, r.status_code


def cli():
    with tempfile.TemporaryDirectory() as d:
        f = os.path.join(d, "cli.txt")
        with open(f, "w") as fh:
            fh.write("from the aws cli")
        run = lambda *a: subprocess.run(["aws", *a], capture_output=True, text=True, timeout=60)
        r = run("s3", "cp", f, f"s3://{BUCKET}/cli.txt")
        assert r.returncode == 0, r.stderr[-300:]
        # (`s3 ls` lists with an encoded `/` delimiter, which moto's signature check gets wrong.)
        r = run("s3api", "list-objects-v2", "--bucket", BUCKET, "--output", "json")
        assert r.returncode == 0 and "cli.txt" in r.stdout, r.stderr[-300:]
        r = run("s3", "cp", f"s3://{BUCKET}/cli.txt", "-")
        assert r.stdout == "from the aws cli", r.stderr[-300:]
        r = run("sts", "get-caller-identity", "--output", "json")
        assert r.returncode == 0 and json.loads(r.stdout)["Arn"].endswith("user/brokered"), r.stderr[-300:]


def foreign_key():
    c = boto3.client("s3", config=CFG, aws_access_key_id="AKIAFOREIGN000000000",
                     aws_secret_access_key="foreign-secret")
    blocked(lambda: c.list_buckets(), "foreign key id")


def other_service():
    blocked(lambda: boto3.client("iam", config=CFG).list_users(), "iam is not bound")


def tampered():
    req = botocore.awsrequest.AWSRequest(
        method="GET", url=f"https://s3.amazonaws.com/{BUCKET}/a/hello%20world.txt",
        headers={"x-amz-content-sha256": hashlib.sha256(b"").hexdigest()})
    botocore.auth.S3SigV4Auth(botocore.credentials.Credentials(KEY, SECRET), "s3", "us-east-1").add_auth(req)
    h = dict(req.headers.items())
    ok = requests.get(req.url, headers=h, timeout=T)
    assert ok.status_code == 200, ok.status_code
    r = requests.get(f"https://s3.amazonaws.com/{BUCKET}/big.bin", headers=h, timeout=T)
    assert r.status_code == 403 and "does not verify" in r.text, r.status_code


def other_endpoint():
    c = boto3.client("s3", config=CFG, endpoint_url="https://evil.test")
    blocked(lambda: c.list_buckets(), "another endpoint")


checks = [("env", env), ("sts-whoami", whoami), ("s3-crud", crud), ("s3-multipart", multipart),
          ("s3-checksum-trailer", checksum_trailer), ("s3-signed-streaming", signed_streaming),
          ("s3-presigned", presigned), ("aws-cli", cli), ("block-foreign-key", foreign_key),
          ("block-other-service", other_service), ("block-tampered", tampered)]
if MODE == "inspect":
    checks.append(("block-other-endpoint", other_endpoint))
ONLY = [c for c in os.environ.get("AWS_CHECKS", "").split(",") if c]
if os.environ.get("AWS_ROTATION"):
    checks.append(("sts-rotation", rotation))
if ONLY:
    checks = [c for c in checks if c[0] in ONLY]
for name, fn in checks:
    check(name, fn)
print(f"aws-sigv4: {failed} failed")
sys.exit(1 if failed else 0)
