#!/usr/bin/env python3
"""Lifecycle rules with boto3, against routers whose lifecycle day lasts two
seconds: each rule removes exactly what it names and nothing else.

usage: lifecycle.py ENDPOINT
Credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
"""
import sys
import time

import boto3
from botocore.config import Config

from s3util import refused

s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
B = "life"


s3.create_bucket(Bucket=B)
s3.put_bucket_versioning(Bucket=B, VersioningConfiguration={"Status": "Enabled"})
refused("NoSuchLifecycleConfiguration", s3.get_bucket_lifecycle_configuration, Bucket=B)
refused("InvalidArgument", s3.put_bucket_lifecycle_configuration, Bucket=B, LifecycleConfiguration={"Rules": [
    {"ID": "t", "Status": "Enabled", "Filter": {"Prefix": ""},
     "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}]}]})
# S3 allows no tag filter on delete-marker removal.
refused("InvalidArgument", s3.put_bucket_lifecycle_configuration, Bucket=B, LifecycleConfiguration={"Rules": [
    {"ID": "tag", "Status": "Enabled", "Filter": {"Tag": {"Key": "k", "Value": "v"}},
     "Expiration": {"ExpiredObjectDeleteMarker": True}}]})

ids = {}
for key in ["logs/a", "logs/b", "keep/a", "tmp/kept"]:
    ids[key] = s3.put_object(Bucket=B, Key=key, Body=key.encode())["VersionId"]
# Only the object carrying every tag of the rule expires.
for key, tagging in [("tagged/both", "temp=yes&team=a"), ("tagged/one", "temp=yes"), ("tagged/other", "temp=no"),
                     ("tagged/none", None)]:
    extra = {"Tagging": tagging} if tagging else {}
    ids[key] = s3.put_object(Bucket=B, Key=key, Body=b"t", **extra)["VersionId"]
hist = [s3.put_object(Bucket=B, Key="hist/x", Body=f"v{i}".encode())["VersionId"] for i in range(4)]
gone = s3.put_object(Bucket=B, Key="tmp/gone", Body=b"x")["VersionId"]
s3.delete_object(Bucket=B, Key="tmp/gone")
s3.delete_object(Bucket=B, Key="tmp/gone", VersionId=gone)  # the marker is left alone
stale = s3.create_multipart_upload(Bucket=B, Key="up/stale")["UploadId"]
other = s3.create_multipart_upload(Bucket=B, Key="other/u")["UploadId"]

rules = [
    {"ID": "logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 1}},
    {"ID": "hist", "Status": "Enabled", "Filter": {"Prefix": "hist/"},
     "NoncurrentVersionExpiration": {"NoncurrentDays": 1, "NewerNoncurrentVersions": 1}},
    {"ID": "markers", "Status": "Enabled", "Filter": {"Prefix": "tmp/"},
     "Expiration": {"ExpiredObjectDeleteMarker": True}},
    {"ID": "uploads", "Status": "Enabled", "Filter": {"Prefix": "up/"},
     "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
    {"ID": "tagged", "Status": "Enabled",
     "Filter": {"And": {"Prefix": "tagged/", "Tags": [{"Key": "temp", "Value": "yes"}, {"Key": "team", "Value": "a"}]}},
     "Expiration": {"Days": 1}},
    {"ID": "off", "Status": "Disabled", "Filter": {"Prefix": "keep/"}, "Expiration": {"Days": 1}},
]
s3.put_bucket_lifecycle_configuration(Bucket=B, LifecycleConfiguration={"Rules": rules})
got = s3.get_bucket_lifecycle_configuration(Bucket=B)["Rules"]
assert [r["ID"] for r in got] == [r["ID"] for r in rules], got
assert got[1]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1, "NewerNoncurrentVersions": 1}, got[1]
assert got[4]["Filter"]["And"]["Tags"] == rules[4]["Filter"]["And"]["Tags"], got[4]

# Two and a half lifecycle days, with the worker passing every second.
time.sleep(6)

listing = s3.list_object_versions(Bucket=B)
versions = {(v["Key"], v["VersionId"]) for v in listing.get("Versions", [])}
markers = {m["Key"] for m in listing.get("DeleteMarkers", []) if m["IsLatest"]}
# Expired current versions under logs/ became delete markers; the data stays.
assert {"logs/a", "logs/b"} <= markers, markers
assert ("logs/a", ids["logs/a"]) in versions and ("logs/b", ids["logs/b"]) in versions
assert "tagged/both" in markers, markers
for key in ["tagged/one", "tagged/other", "tagged/none"]:
    assert (key, ids[key]) in versions and key not in markers, (key, markers)
# The disabled rule and keys outside every rule are untouched.
assert ("keep/a", ids["keep/a"]) in versions and "keep/a" not in markers
assert ("tmp/kept", ids["tmp/kept"]) in versions and "tmp/kept" not in markers
# hist/x keeps its current version and its newest noncurrent one.
assert sorted(v for k, v in versions if k == "hist/x") == sorted(hist[2:]), versions
# The lone marker is gone.
assert "tmp/gone" not in markers and not any(k == "tmp/gone" for k, _ in versions)
# The stale upload under up/ is aborted, the other kept.
uploads = {u["UploadId"] for u in s3.list_multipart_uploads(Bucket=B).get("Uploads", [])}
assert stale not in uploads and other in uploads, uploads

s3.delete_bucket_lifecycle(Bucket=B)
refused("NoSuchLifecycleConfiguration", s3.get_bucket_lifecycle_configuration, Bucket=B)
print("OK")
