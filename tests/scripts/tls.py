#!/usr/bin/env python3
"""HTTPS with boto3: through HAProxy (which ends TLS) and straight to a router
serving HTTPS; a policy on aws:SecureTransport and aws:SourceIp judges what
the router believes about its client; slow and idle connections are dropped.

usage: tls.py HTTP_ENDPOINT HTTPS_ENDPOINT TLS_ROUTER CA_FILE
The TLS router trusts no proxy on loopback and has a 2 s header deadline.
"""
import json
import socket
import ssl
import sys
import time
from urllib.parse import urlparse

import boto3
import requests
from botocore.config import Config

from s3util import refused, settle

http_endpoint, https_endpoint, tls_router, ca = sys.argv[1:5]
config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1})


def client(endpoint, **kwargs):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", verify=ca, config=config, **kwargs)


plain, secure, direct = client(http_endpoint), client(https_endpoint), client(tls_router)
B = "secure"


# S3 over HTTPS, through HAProxy and straight to the router.
secure.create_bucket(Bucket=B)
secure.put_object(Bucket=B, Key="k", Body=b"over tls")
assert direct.get_object(Bucket=B, Key="k")["Body"].read() == b"over tls"
assert plain.get_object(Bucket=B, Key="k")["Body"].read() == b"over tls"
# A plain-HTTP request to the HTTPS router gets no answer.
try:
    requests.get(tls_router.replace("https://", "http://") + "/_bucketfs/health", timeout=5)
    raise AssertionError("plain HTTP answered by an HTTPS router")
except requests.exceptions.ConnectionError:
    pass

# Only TLS, and never from 203.0.113.9.
policy = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Deny", "Principal": "*", "Action": "s3:*",
     "Resource": [f"arn:aws:s3:::{B}", f"arn:aws:s3:::{B}/*"],
     "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
    {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{B}/*",
     "Condition": {"IpAddress": {"aws:SourceIp": "203.0.113.9/32"}}},
]}
secure.put_bucket_policy(Bucket=B, Policy=json.dumps(policy))
settle()
refused("AccessDenied", plain.get_object, Bucket=B, Key="k")
assert secure.get_object(Bucket=B, Key="k")["Body"].read() == b"over tls"
assert direct.get_object(Bucket=B, Key="k")["Body"].read() == b"over tls"
# The read of a copy's source is judged with the request's conditions too.
secure.create_bucket(Bucket="dest")
refused("AccessDenied", plain.copy_object, Bucket="dest", Key="c", CopySource={"Bucket": B, "Key": "k"})
secure.copy_object(Bucket="dest", Key="c", CopySource={"Bucket": B, "Key": "k"})


def with_headers(c, headers):
    def add(request, **_):
        for name, value in headers.items():
            request.headers[name] = value
    c.meta.events.register("before-send.s3.*", add)  # unsigned, as a proxy sees them
    return c


# Forwarded headers from a client that is no trusted proxy are ignored: a
# claimed plain-HTTP origin or address changes nothing.
spoofer = with_headers(client(tls_router), {"X-Forwarded-Proto": "http", "X-Forwarded-For": "203.0.113.9"})
assert spoofer.get_object(Bucket=B, Key="k")["Body"].read() == b"over tls"
# Through HAProxy (trusted), a client's own X-Forwarded-Proto is replaced
# and its X-Forwarded-For precedes the address HAProxy saw.
spoofer = with_headers(client(http_endpoint), {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"})
refused("AccessDenied", spoofer.get_object, Bucket=B, Key="k")
secure.delete_bucket_policy(Bucket=B)

# A client that does not finish its headers, or sits idle after a
# request, is dropped at the 2 s deadline.
host = urlparse(tls_router)
context = ssl.create_default_context(cafile=ca)


def connect():
    return context.wrap_socket(socket.create_connection((host.hostname, host.port)), server_hostname=host.hostname)


for first in [b"GET /_bucketfs/health HTTP/1.1\r\nHost: x\r\n",
              b"GET /_bucketfs/health HTTP/1.1\r\nHost: x\r\n\r\n"]:
    s = connect()
    s.settimeout(15)
    started = time.monotonic()
    s.sendall(first)
    received = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        received += chunk
    waited = time.monotonic() - started
    assert 1.5 < waited < 8, (first, waited)
    if first.endswith(b"\r\n\r\n"):
        assert received.startswith(b"HTTP/1.1 200"), received
print("OK")
