#!/usr/bin/env python3
"""Object lock with boto3, the way a compliance archive uses it.

usage: object_lock.py ENDPOINT
Credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (the bucket
owner). Exits non-zero with the failed expectation.
"""
import datetime
import sys
import time

import boto3
from botocore.config import Config

from s3util import refused

s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
B = "vault"
now = lambda: datetime.datetime.now(datetime.timezone.utc)


def put(key, body, **lock):
    return s3.put_object(Bucket=B, Key=key, Body=body, **lock)["VersionId"]


s3.create_bucket(Bucket=B, ObjectLockEnabledForBucket=True)
assert s3.get_bucket_versioning(Bucket=B)["Status"] == "Enabled"
refused("InvalidBucketState", s3.put_bucket_versioning, Bucket=B,
        VersioningConfiguration={"Status": "Suspended"})
conf = s3.get_object_lock_configuration(Bucket=B)["ObjectLockConfiguration"]
assert conf["ObjectLockEnabled"] == "Enabled" and "Rule" not in conf, conf
s3.create_bucket(Bucket="plain")
refused("ObjectLockConfigurationNotFoundError", s3.get_object_lock_configuration, Bucket="plain")
refused("InvalidArgument", s3.put_object, Bucket="plain", Key="k", Body=b"x",
        ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=now() + datetime.timedelta(days=1))

# Governance: no early delete without the bypass; with it, the owner may.
gov = put("gov", b"governed", ObjectLockMode="GOVERNANCE",
          ObjectLockRetainUntilDate=now() + datetime.timedelta(days=1))
ret = s3.get_object_retention(Bucket=B, Key="gov", VersionId=gov)["Retention"]
assert ret["Mode"] == "GOVERNANCE", ret
refused("AccessDenied", s3.delete_object, Bucket=B, Key="gov", VersionId=gov)
refused("AccessDenied", s3.put_object_retention, Bucket=B, Key="gov", VersionId=gov,
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": now() + datetime.timedelta(hours=1)})
errors = s3.delete_objects(Bucket=B, Delete={"Objects": [{"Key": "gov", "VersionId": gov}]}).get("Errors", [])
assert [e["Code"] for e in errors] == ["AccessDenied"], errors
s3.delete_object(Bucket=B, Key="gov", VersionId=gov, BypassGovernanceRetention=True)
refused("NoSuchVersion", s3.get_object, Bucket=B, Key="gov", VersionId=gov)

# Compliance: no one, bypass or not, until its date; then it may go.
comp = put("comp", b"complied", ObjectLockMode="COMPLIANCE",
           ObjectLockRetainUntilDate=now() + datetime.timedelta(seconds=4))
refused("AccessDenied", s3.delete_object, Bucket=B, Key="comp", VersionId=comp)
refused("AccessDenied", s3.delete_object, Bucket=B, Key="comp", VersionId=comp, BypassGovernanceRetention=True)
refused("AccessDenied", s3.put_object_retention, Bucket=B, Key="comp", VersionId=comp, BypassGovernanceRetention=True,
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": now() + datetime.timedelta(seconds=5)})
# A plain DELETE leaves a marker; the locked version is kept.
marker = s3.delete_object(Bucket=B, Key="comp")
assert marker.get("DeleteMarker") is True, marker
assert s3.get_object(Bucket=B, Key="comp", VersionId=comp)["Body"].read() == b"complied"
time.sleep(5)
s3.delete_object(Bucket=B, Key="comp", VersionId=comp)

# Legal hold: no delete while on, whatever the retention.
held = put("held", b"evidence", ObjectLockLegalHoldStatus="ON")
assert s3.get_object_legal_hold(Bucket=B, Key="held", VersionId=held)["LegalHold"]["Status"] == "ON"
refused("AccessDenied", s3.delete_object, Bucket=B, Key="held", VersionId=held, BypassGovernanceRetention=True)
s3.put_object_legal_hold(Bucket=B, Key="held", VersionId=held, LegalHold={"Status": "OFF"})
s3.delete_object(Bucket=B, Key="held", VersionId=held)

# GET and HEAD say how a version is locked.
until = now() + datetime.timedelta(days=2)
shown = put("shown", b"s", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until,
            ObjectLockLegalHoldStatus="ON")
for answer in (s3.head_object(Bucket=B, Key="shown"), s3.get_object(Bucket=B, Key="shown")):
    assert answer["ObjectLockMode"] == "GOVERNANCE" and answer["ObjectLockLegalHoldStatus"] == "ON", answer
    assert abs((answer["ObjectLockRetainUntilDate"] - until).total_seconds()) < 1, answer
# A multipart upload and a copy take lock headers too.
up = s3.create_multipart_upload(Bucket=B, Key="mp", ObjectLockLegalHoldStatus="ON")["UploadId"]
etag = s3.upload_part(Bucket=B, Key="mp", UploadId=up, PartNumber=1, Body=b"m")["ETag"]
mp = s3.complete_multipart_upload(Bucket=B, Key="mp", UploadId=up,
                                  MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})["VersionId"]
refused("AccessDenied", s3.delete_object, Bucket=B, Key="mp", VersionId=mp, BypassGovernanceRetention=True)
copied = s3.copy_object(Bucket=B, Key="copied", CopySource={"Bucket": B, "Key": "mp"},
                        ObjectLockLegalHoldStatus="ON")["VersionId"]
assert s3.get_object_legal_hold(Bucket=B, Key="copied", VersionId=copied)["LegalHold"]["Status"] == "ON"
for key, vid in [("shown", shown), ("mp", mp), ("copied", copied)]:
    s3.put_object_legal_hold(Bucket=B, Key=key, VersionId=vid, LegalHold={"Status": "OFF"})
s3.delete_object(Bucket=B, Key="shown", VersionId=shown, BypassGovernanceRetention=True)

# A default retention applies to new versions.
s3.put_object_lock_configuration(Bucket=B, ObjectLockConfiguration={
    "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
rule = s3.get_object_lock_configuration(Bucket=B)["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
assert rule == {"Mode": "GOVERNANCE", "Days": 1}, rule
dflt = put("default", b"by default")
ret = s3.get_object_retention(Bucket=B, Key="default", VersionId=dflt)["Retention"]
assert ret["Mode"] == "GOVERNANCE" and ret["RetainUntilDate"] > now() + datetime.timedelta(hours=23), ret
refused("AccessDenied", s3.delete_object, Bucket=B, Key="default", VersionId=dflt)
# Overwritten and marked deleted, it is still there, and survives the
# garbage collector's passes.
put("default", b"newer")
s3.delete_object(Bucket=B, Key="default")
print("READY", dflt, flush=True)
sys.stdin.readline()  # the caller lets the collector run
assert s3.get_object(Bucket=B, Key="default", VersionId=dflt)["Body"].read() == b"by default"
print("OK")
