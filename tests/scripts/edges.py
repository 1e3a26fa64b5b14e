#!/usr/bin/env python3
"""Edge cases a client can send, with boto3 and the extension scripts:
each gets the answer S3 gives and stores nothing it should not.

usage: edges.py ENDPOINT BUCKET
Credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. Exits non-zero
with the failed expectation.
"""
import json
import os
import subprocess
import sys
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from s3util import refused

endpoint, bucket = sys.argv[1], sys.argv[2]
here = os.path.dirname(os.path.abspath(__file__))
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def keys():
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


# User metadata over S3's 2 KB: refused, nothing stored.
refused("MetadataTooLarge", s3.put_object, Bucket=bucket, Key="fat", Body=b"x", Metadata={"big": "v" * 3000})
refused("MetadataTooLarge", s3.create_multipart_upload, Bucket=bucket, Key="fat", Metadata={"big": "v" * 3000})
assert "fat" not in keys()

# DeleteObjects names at most 1,000 keys.
many = {"Objects": [{"Key": f"k{i}"} for i in range(1001)]}
refused("MalformedXML", s3.delete_objects, Bucket=bucket, Delete=many)

# A batch whose content type or metadata could never be sent back fails alone.
manifest = json.dumps([
    {"key": "crlf", "size": 1, "content_type": "text/plain\r\nx-evil: 1"},
    {"key": "fine", "size": 1},
    {"key": "fatmeta", "size": 1, "metadata": {"m": "v" * 3000}},
])
out = subprocess.run([sys.executable, os.path.join(here, "batch.py"), endpoint, bucket, manifest, "abc"],
                     capture_output=True, text=True, check=True).stdout
results = json.loads(out.split(" ", 1)[1])["results"]
assert "error" in results[0] and "etag" in results[1] and "error" in results[2], results
assert sorted(k for k in keys() if k in ("crlf", "fine", "fatmeta")) == ["fine"], keys()
# Sizes that overflow when summed are refused whole.
overflow = json.dumps([{"key": "o1", "size": 2**64 - 1}, {"key": "o2", "size": 2}])
out = subprocess.run([sys.executable, os.path.join(here, "batch.py"), endpoint, bucket, overflow, "x"],
                     capture_output=True, text=True, check=True).stdout
assert out.startswith("413") or "EntityTooLarge" in out, out

# A prefix rename that would make keys over 1,024 bytes is refused whole.
s3.put_object(Bucket=bucket, Key="d/" + "n" * 1000, Body=b"1")
s3.put_object(Bucket=bucket, Key="d/short", Body=b"2")
out = subprocess.run([sys.executable, os.path.join(here, "rename.py"), endpoint, bucket, "d/", "e" * 100 + "/",
                      "--prefix"], capture_output=True, text=True, check=True).stdout
assert "KeyTooLong" in out, out
assert "d/short" in keys() and not any(k.startswith("e" * 100) for k in keys()), keys()

# Ranges: none fits an empty object, nor one past the end.
s3.put_object(Bucket=bucket, Key="ten", Body=b"0123456789")
got = s3.get_object(Bucket=bucket, Key="ten", Range="bytes=-3")
assert got["ResponseMetadata"]["HTTPStatusCode"] == 206 and got["Body"].read() == b"789"
s3.put_object(Bucket=bucket, Key="empty", Body=b"")
refused("InvalidRange", s3.get_object, Bucket=bucket, Key="empty", Range="bytes=-5")
refused("InvalidRange", s3.get_object, Bucket=bucket, Key="ten", Range="bytes=20-30")
assert s3.get_object(Bucket=bucket, Key="empty")["Body"].read() == b""
# A Range S3 cannot parse is ignored (signed or not): the whole object, 200.
for spec in ["bytes=abc", "bytes=0-1,3-4", "chars=0-3", "bytes=5-2"]:
    got = s3.get_object(Bucket=bucket, Key="ten", Range=spec)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200 and got["Body"].read() == b"0123456789", spec
    head = s3.head_object(Bucket=bucket, Key="ten", Range=spec)
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 200 and head["ContentLength"] == 10, spec
v4 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
url = v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "ten"})
with urllib.request.urlopen(urllib.request.Request(url, headers={"Range": "bytes=x-y"})) as r:
    assert r.status == 200 and r.read() == b"0123456789"
# Standard headers are kept and given back; response-* overrides them on GET.
s3.put_object(Bucket=bucket, Key="page", Body=b"<html/>", ContentType="text/html", CacheControl="max-age=60",
              ContentDisposition='inline; filename="p.html"', ContentEncoding="identity",
              ContentLanguage="en", Expires="Wed, 21 Oct 2037 07:28:00 GMT", Metadata={"color": "blue"})
head = s3.head_object(Bucket=bucket, Key="page")
assert head["CacheControl"] == "max-age=60" and head["ContentEncoding"] == "identity", head
assert head["ContentDisposition"] == 'inline; filename="p.html"' and head["ContentLanguage"] == "en", head
assert head["Expires"].year == 2037 and head["Metadata"] == {"color": "blue"}, head
got = s3.get_object(Bucket=bucket, Key="page", ResponseContentDisposition='attachment; filename="x.html"',
                    ResponseCacheControl="no-store", ResponseContentType="application/octet-stream")
assert got["ContentDisposition"] == 'attachment; filename="x.html"' and got["CacheControl"] == "no-store", got
assert got["ContentType"] == "application/octet-stream" and got["ContentLanguage"] == "en", got
s3.copy_object(Bucket=bucket, Key="page-copy", CopySource={"Bucket": bucket, "Key": "page"})
copied = s3.head_object(Bucket=bucket, Key="page-copy")
assert copied["CacheControl"] == "max-age=60" and copied["Metadata"] == {"color": "blue"}, copied
s3.copy_object(Bucket=bucket, Key="page-new", CopySource={"Bucket": bucket, "Key": "page"},
               MetadataDirective="REPLACE", CacheControl="no-cache")
replaced = s3.head_object(Bucket=bucket, Key="page-new")
assert replaced["CacheControl"] == "no-cache" and "ContentLanguage" not in replaced, replaced
# A batch object naming a reserved metadata name fails alone.
out = subprocess.run([sys.executable, os.path.join(here, "batch.py"), endpoint, bucket,
                      json.dumps([{"key": "sneaky", "size": 1, "metadata": {":cache-control": "x"}}]), "z"],
                     capture_output=True, text=True, check=True).stdout
assert "error" in json.loads(out.split(" ", 1)[1])["results"][0], out
# GetObjectAttributes answers what it is asked.
attrs = s3.get_object_attributes(Bucket=bucket, Key="ten", ObjectAttributes=["ETag", "ObjectSize", "StorageClass"])
assert attrs["ObjectSize"] == 10 and attrs["StorageClass"] == "STANDARD" and attrs["ETag"], attrs
assert "ObjectParts" not in attrs, attrs

# A GET or HEAD of a deleted key names the delete marker, as S3 does.
vb = bucket + "-versioned"
s3.create_bucket(Bucket=vb)
s3.put_bucket_versioning(Bucket=vb, VersioningConfiguration={"Status": "Enabled"})
s3.put_object(Bucket=vb, Key="k", Body=b"x")
marker = s3.delete_object(Bucket=vb, Key="k")
assert marker["DeleteMarker"] is True, marker
for call in (s3.get_object, s3.head_object):
    try:
        call(Bucket=vb, Key="k")
        raise AssertionError(f"{call.__name__} of a deleted key succeeded")
    except ClientError as e:
        headers = e.response["ResponseMetadata"]["HTTPHeaders"]
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 404, e.response
        assert headers.get("x-amz-delete-marker") == "true", headers
        assert headers.get("x-amz-version-id") == marker["VersionId"], headers
print("OK")
