#!/usr/bin/env python3
"""Calls the router's batch PUT extension, signed with SigV4 by botocore.

usage: batch.py ENDPOINT BUCKET MANIFEST_JSON DATA [--bad-md5] [--unsigned]
Sends MANIFEST_JSON, a newline and DATA (given as text) with a Content-MD5
of the whole body, and prints the HTTP status and body. Credentials from
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
"""
import base64
import hashlib
import os
import sys
import urllib.error
import urllib.request

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

endpoint, bucket, manifest, data = sys.argv[1:5]
flags = sys.argv[5:]
body = manifest.encode() + b"\n" + data.encode()
md5 = hashlib.md5(b"tampered" if "--bad-md5" in flags else body).digest()
headers = {
    "content-md5": base64.b64encode(md5).decode(),
    "content-type": "application/octet-stream",
}
url = f"{endpoint}/{bucket}?bucketfs-batch"
request = AWSRequest(method="POST", url=url, headers=headers, data=body)
if "--unsigned" not in flags:
    creds = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    S3SigV4Auth(creds, "s3", "us-east-1").add_auth(request)
prepared = urllib.request.Request(url, data=body, headers=dict(request.headers.items()), method="POST")
try:
    with urllib.request.urlopen(prepared, timeout=60) as resp:
        print(resp.status, resp.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
