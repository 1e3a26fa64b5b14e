#!/usr/bin/env python3
"""Calls the router's rename extension, signed with SigV4 by botocore.

usage: rename.py ENDPOINT BUCKET FROM TO [--prefix] [--no-replace] [--unsigned]
Prints the HTTP status and body. Credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
"""
import os
import sys
import urllib.error
import urllib.request
from urllib.parse import quote

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

endpoint, bucket, src, dst = sys.argv[1:5]
flags = sys.argv[5:]
headers = {
    "x-bucketfs-rename-from": quote(src, safe="/"),
    "x-bucketfs-rename-to": quote(dst, safe="/"),
}
if "--prefix" in flags:
    headers["x-bucketfs-rename-prefix"] = "true"
if "--no-replace" in flags:
    headers["x-bucketfs-no-replace"] = "true"
url = f"{endpoint}/{bucket}?bucketfs-rename"
request = AWSRequest(method="POST", url=url, headers=headers, data=b"")
if "--unsigned" not in flags:
    creds = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    S3SigV4Auth(creds, "s3", "us-east-1").add_auth(request)
prepared = urllib.request.Request(url, data=b"", headers=dict(request.headers.items()), method="POST")
try:
    with urllib.request.urlopen(prepared, timeout=60) as resp:
        print(resp.status, resp.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
