#!/usr/bin/env python3
"""The everyday S3 surface as clients use it: object and bucket tagging,
ACL, lock and tags given to a multipart upload, partNumber on GET and HEAD,
GetObjectAttributes parts, CORS (configuration, browser preflight, response
headers) and browser POST uploads with a signed policy.

usage: surface.py ENDPOINT
Credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. Exits non-zero
with the failed expectation.
"""
import sys

import requests
from botocore.exceptions import ClientError

from s3util import client, refused, settle

endpoint = sys.argv[1]
s3 = client(endpoint, signature_version="s3v4")
sigv2 = client(endpoint, signature_version="s3")
anonymous = client(endpoint, anonymous=True)
B = sys.argv[2] if len(sys.argv) > 2 else "surface"
MiB = 1 << 20


def tags(key, **kwargs):
    got = s3.get_object_tagging(Bucket=B, Key=key, **kwargs)["TagSet"]
    return {t["Key"]: t["Value"] for t in got}


s3.create_bucket(Bucket=B)
s3.put_bucket_versioning(Bucket=B, VersioningConfiguration={"Status": "Enabled"})

# --- Object tagging --------------------------------------------------------
v1 = s3.put_object(Bucket=B, Key="t", Body=b"one", Tagging="project=blue%20sky&team=a")["VersionId"]
assert tags("t") == {"project": "blue sky", "team": "a"}, tags("t")
assert s3.get_object(Bucket=B, Key="t")["TagCount"] == 2
s3.put_object_tagging(Bucket=B, Key="t", Tagging={"TagSet": [{"Key": "stage", "Value": "final"}]})
assert tags("t") == {"stage": "final"}
# Tagging makes no new version.
assert len(s3.list_object_versions(Bucket=B, Prefix="t")["Versions"]) == 1
v2 = s3.put_object(Bucket=B, Key="t", Body=b"two")["VersionId"]
assert tags("t") == {} and "TagCount" not in s3.get_object(Bucket=B, Key="t")
assert tags("t", VersionId=v1) == {"stage": "final"}
s3.delete_object_tagging(Bucket=B, Key="t", VersionId=v1)
assert tags("t", VersionId=v1) == {}
for bad in ["aws:reserved=1", "&".join(f"k{i}=v" for i in range(11)), "k=" + "v" * 257, "a=1&a=2"]:
    refused("InvalidTag", s3.put_object, Bucket=B, Key="bad-tags", Body=b"x", Tagging=bad)
refused("InvalidTag", s3.put_object_tagging, Bucket=B, Key="t",
        Tagging={"TagSet": [{"Key": "aws:x", "Value": "1"}]})
refused("NoSuchKey", s3.get_object_tagging, Bucket=B, Key="bad-tags")
refused("NoSuchVersion", s3.get_object_tagging, Bucket=B, Key="t", VersionId="nope")

# CopyObject copies the source's tags, or replaces them when told to.
s3.put_object_tagging(Bucket=B, Key="t", Tagging={"TagSet": [{"Key": "src", "Value": "1"}]})
s3.copy_object(Bucket=B, Key="copied", CopySource={"Bucket": B, "Key": "t"})
assert tags("copied") == {"src": "1"}
s3.copy_object(Bucket=B, Key="replaced", CopySource={"Bucket": B, "Key": "t"},
               TaggingDirective="REPLACE", Tagging="new=2")
assert tags("replaced") == {"new": "2"}

# An empty delimiter folds nothing.
listing = s3.list_objects_v2(Bucket=B, Delimiter="")
assert "CommonPrefixes" not in listing and len(listing["Contents"]) == 3, listing

# --- Bucket tagging ---------------------------------------------------------
refused("NoSuchTagSet", s3.get_bucket_tagging, Bucket=B)
s3.put_bucket_tagging(Bucket=B, Tagging={"TagSet": [{"Key": "cost-center", "Value": "42"}]})
assert s3.get_bucket_tagging(Bucket=B)["TagSet"] == [{"Key": "cost-center", "Value": "42"}]
s3.delete_bucket_tagging(Bucket=B)
refused("NoSuchTagSet", s3.get_bucket_tagging, Bucket=B)

# --- Multipart: tags and ACL given at the start; partNumber on GET/HEAD ------
parts_body = [b"a" * (5 * MiB), b"b" * (5 * MiB), b"tail"]
up = s3.create_multipart_upload(Bucket=B, Key="mp", Tagging="from=upload", ACL="public-read")["UploadId"]
done = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=B, Key="mp", UploadId=up, PartNumber=n, Body=body)["ETag"]}
        for n, body in enumerate(parts_body, 1)]
s3.complete_multipart_upload(Bucket=B, Key="mp", UploadId=up, MultipartUpload={"Parts": done})
assert tags("mp") == {"from": "upload"}
assert anonymous.get_object(Bucket=B, Key="mp", PartNumber=3)["Body"].read() == b"tail"
refused("AccessDenied", anonymous.get_object, Bucket=B, Key="t")

for n, body in enumerate(parts_body, 1):
    got = s3.get_object(Bucket=B, Key="mp", PartNumber=n)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206, got["ResponseMetadata"]
    assert got["PartsCount"] == 3 and got["ContentLength"] == len(body), (n, got["ContentLength"])
    assert got["Body"].read() == body, n
head = s3.head_object(Bucket=B, Key="mp", PartNumber=2)
assert head["ContentLength"] == 5 * MiB and head["PartsCount"] == 3, head
assert head["ResponseMetadata"]["HTTPStatusCode"] == 206, head["ResponseMetadata"]
refused("InvalidPartNumber", s3.get_object, Bucket=B, Key="mp", PartNumber=4)
# An object written whole is one part.
whole = s3.get_object(Bucket=B, Key="copied", PartNumber=1)
assert whole["Body"].read() == b"two"
refused("InvalidPartNumber", s3.get_object, Bucket=B, Key="copied", PartNumber=2)
# A copy keeps the part layout.
s3.copy_object(Bucket=B, Key="mp-copy", CopySource={"Bucket": B, "Key": "mp"})
assert s3.get_object(Bucket=B, Key="mp-copy", PartNumber=3)["Body"].read() == b"tail"

attrs = s3.get_object_attributes(Bucket=B, Key="mp", ObjectAttributes=["ObjectParts"], MaxParts=2)
parts = attrs["ObjectParts"]
assert parts["TotalPartsCount"] == 3 and parts["IsTruncated"], parts
assert [(p["PartNumber"], p["Size"]) for p in parts["Parts"]] == [(1, 5 * MiB), (2, 5 * MiB)], parts
rest = s3.get_object_attributes(Bucket=B, Key="mp", ObjectAttributes=["ObjectParts"],
                                PartNumberMarker=parts["NextPartNumberMarker"])["ObjectParts"]
assert [(p["PartNumber"], p["Size"]) for p in rest["Parts"]] == [(3, 4)] and not rest["IsTruncated"], rest

# --- CORS -------------------------------------------------------------------
url = f"{endpoint}/{B}/mp"


def preflight(origin, method, headers=None):
    h = {"Access-Control-Request-Method": method}
    if origin:
        h["Origin"] = origin
    if headers:
        h["Access-Control-Request-Headers"] = headers
    return requests.options(url, headers=h, timeout=10)


refused("NoSuchCORSConfiguration", s3.get_bucket_cors, Bucket=B)
assert preflight("https://app.example.com", "GET").status_code == 403
rules = [
    {"ID": "app", "AllowedOrigins": ["https://*.example.com"], "AllowedMethods": ["GET", "PUT"],
     "AllowedHeaders": ["x-amz-*", "content-type"], "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 600},
    {"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]},
]
s3.put_bucket_cors(Bucket=B, CORSConfiguration={"CORSRules": rules})
settle()
got = s3.get_bucket_cors(Bucket=B)["CORSRules"]
assert got[0]["AllowedOrigins"] == ["https://*.example.com"] and got[0]["MaxAgeSeconds"] == 600, got
refused("InvalidArgument", s3.put_bucket_cors, Bucket=B,
        CORSConfiguration={"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}]})

r = preflight("https://app.example.com", "PUT", "x-amz-date, Content-Type")
assert r.status_code == 200, (r.status_code, r.text)
assert r.headers["Access-Control-Allow-Origin"] == "https://app.example.com", r.headers
assert r.headers["Access-Control-Allow-Methods"] == "GET, PUT", r.headers
assert r.headers["Access-Control-Allow-Headers"].lower() == "x-amz-date, content-type", r.headers
assert r.headers["Access-Control-Max-Age"] == "600", r.headers
r = preflight("https://else.org", "GET")
assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "*", r.headers
assert preflight("https://else.org", "PUT").status_code == 403
assert preflight("https://app.example.com", "PUT", "authorization-x").status_code == 403
assert preflight(None, "GET").status_code == 400
# A browser's actual request gets the headers; one from a stranger origin not.
r = requests.get(url, headers={"Origin": "https://app.example.com"}, timeout=10)
assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "https://app.example.com", r.headers
assert r.headers["Access-Control-Expose-Headers"] == "ETag", r.headers
r = requests.put(f"{endpoint}/{B}/x", data=b"x", headers={"Origin": "https://else.org"}, timeout=10)
assert r.status_code == 403 and "Access-Control-Allow-Origin" not in r.headers, (r.status_code, r.headers)
s3.delete_bucket_cors(Bucket=B)
settle()
assert preflight("https://app.example.com", "GET").status_code == 403

# --- Browser POST upload with a signed policy --------------------------------
post = s3.generate_presigned_post(
    B, "uploads/photo.txt",
    Fields={"x-amz-meta-origin": "form"},
    Conditions=[["starts-with", "$key", "uploads/"], {"x-amz-meta-origin": "form"},
                ["content-length-range", 1, 1024]],
    ExpiresIn=600)
r = requests.post(post["url"], data=post["fields"], files={"file": ("photo.txt", b"posted bytes")}, timeout=10)
assert r.status_code == 204, (r.status_code, r.text)
got = s3.get_object(Bucket=B, Key="uploads/photo.txt")
assert got["Body"].read() == b"posted bytes" and got["Metadata"] == {"origin": "form"}, got["Metadata"]
# Too large for the policy, a field the policy does not allow, a forged
# signature: refused, nothing stored.
r = requests.post(post["url"], data=post["fields"], files={"file": ("big.txt", b"x" * 2048)}, timeout=10)
assert r.status_code in (400, 403), (r.status_code, r.text)
fields = dict(post["fields"], **{"x-amz-meta-origin": "elsewhere"})
r = requests.post(post["url"], data=fields, files={"file": ("meta.txt", b"x")}, timeout=10)
assert r.status_code in (400, 403), (r.status_code, r.text)
fields = dict(post["fields"], **{"x-amz-signature": "0" * 64})
r = requests.post(post["url"], data=fields, files={"file": ("forged.txt", b"x")}, timeout=10)
assert r.status_code == 403, (r.status_code, r.text)
expired = s3.generate_presigned_post(B, "uploads/late.txt", ExpiresIn=-10)
r = requests.post(expired["url"], data=expired["fields"], files={"file": ("late.txt", b"x")}, timeout=10)
assert r.status_code in (400, 403), (r.status_code, r.text)
keys = [o["Key"] for o in s3.list_objects_v2(Bucket=B, Prefix="uploads/").get("Contents", [])]
assert keys == ["uploads/photo.txt"], keys
# Signature Version 2 is refused here as everywhere (no --allow-sigv2).
old = sigv2.generate_presigned_post(B, "uploads/v2.txt")
assert "signature" in old["fields"], old["fields"]
r = requests.post(old["url"], data=old["fields"], files={"file": ("v2.txt", b"x")}, timeout=10)
assert r.status_code == 403, (r.status_code, r.text)
# The ${filename} placeholder takes the uploaded file's name, as in S3.
named = s3.generate_presigned_post(B, "uploads/${filename}", Conditions=[["starts-with", "$key", "uploads/"]])
r = requests.post(named["url"], data=named["fields"], files={"file": ("n.txt", b"named")}, timeout=10)
assert r.status_code == 204, (r.status_code, r.text)
assert s3.get_object(Bucket=B, Key="uploads/n.txt")["Body"].read() == b"named"
s3.delete_object(Bucket=B, Key="uploads/n.txt")
# A form's acl field (as AWS documents it) or x-amz-acl field makes a
# public object; an x-amz-acl header, which the policy does not cover, does not.
for field in ["acl", "x-amz-acl"]:
    key = f"uploads/public-{field}.txt"
    public = s3.generate_presigned_post(B, key, Fields={field: "public-read"}, Conditions=[{field: "public-read"}])
    r = requests.post(public["url"], data=public["fields"], files={"file": ("p.txt", b"open")}, timeout=10)
    assert r.status_code == 204, (field, r.status_code, r.text)
    assert anonymous.get_object(Bucket=B, Key=key)["Body"].read() == b"open", field
sneaky = s3.generate_presigned_post(B, "uploads/sneaky.txt")
r = requests.post(sneaky["url"], data=sneaky["fields"], files={"file": ("s.txt", b"s")},
                  headers={"x-amz-acl": "public-read"}, timeout=10)
assert r.status_code == 204, (r.status_code, r.text)
denied = False
try:
    anonymous.get_object(Bucket=B, Key="uploads/sneaky.txt")
except ClientError as e:
    denied = e.response["ResponseMetadata"]["HTTPStatusCode"] == 403
assert denied, "a header outside the policy made the object public"
# success_action_status=201 answers with the XML S3 gives.
post = s3.generate_presigned_post(B, "uploads/status.txt", Fields={"success_action_status": "201"},
                                  Conditions=[{"success_action_status": "201"}])
r = requests.post(post["url"], data=post["fields"], files={"file": ("s.txt", b"s")}, timeout=10)
assert r.status_code == 201 and "<Key>uploads/status.txt</Key>" in r.text, (r.status_code, r.text)
print("OK")
