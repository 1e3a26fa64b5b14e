#!/usr/bin/env python3
"""PUTs a file through a presigned URL at a limited rate, in one request:
a slow client whose upload lasts longer than the chunks' GC grace.

usage: slow_put.py ENDPOINT BUCKET KEY FILE BYTES_PER_SECOND
Prints OK when the PUT answered 200.
Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
"""
import http.client
import os
import sys
import time
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

endpoint, bucket, key, path, rate = sys.argv[1:6]
rate = int(rate)
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
url = urlsplit(s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=600))
size = os.path.getsize(path)


def paced():
    step = max(rate // 10, 1)
    with open(path, "rb") as f:
        while block := f.read(step):
            yield block
            time.sleep(0.1)


conn = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
started = time.monotonic()
conn.request("PUT", url.path + "?" + url.query, body=paced(), headers={"Content-Length": str(size)})
reply = conn.getresponse()
body = reply.read().decode(errors="replace")
print(f"status {reply.status} after {time.monotonic() - started:.1f}s {body[:300]}")
if reply.status == 200:
    print("OK")
