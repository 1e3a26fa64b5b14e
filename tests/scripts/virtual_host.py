#!/usr/bin/env python3
"""boto3 with virtual-host-style addressing (BUCKET.s3.test) against a router
started with --domain s3.test. Names under s3.test resolve to loopback here
(no DNS needed); the port is the cluster's HAProxy.

usage: virtual_host.py PORT BUCKET
"""
import socket
import sys

import boto3
from botocore.config import Config

port, bucket = int(sys.argv[1]), sys.argv[2]
real_getaddrinfo = socket.getaddrinfo


def loopback_for_test_domain(host, *args, **kwargs):
    if isinstance(host, str) and (host == "s3.test" or host.endswith(".s3.test")):
        host = "127.0.0.1"
    return real_getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = loopback_for_test_domain
s3 = boto3.client("s3", endpoint_url=f"http://s3.test:{port}", region_name="us-east-1",
                  config=Config(signature_version="s3v4", s3={"addressing_style": "virtual"}))
s3.create_bucket(Bucket=bucket)
s3.put_object(Bucket=bucket, Key="hello/world.txt", Body=b"virtual hosted\n")
body = s3.get_object(Bucket=bucket, Key="hello/world.txt")["Body"].read()
assert body == b"virtual hosted\n", body
keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
assert keys == ["hello/world.txt"], keys
print("ok")
