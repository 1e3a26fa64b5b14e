#!/usr/bin/env python3
"""Sends a presigned PUT whose body is shorter than its Content-Length, then
closes the connection: what a client that dies mid-upload looks like.

usage: raw_put.py ENDPOINT BUCKET KEY DECLARED_LEN SENT_LEN [--wait]
With --wait the connection stays open and the server's early answer is read
(an oversized body refused before it is sent).
Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
"""
import socket
import sys
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

endpoint, bucket, key, declared, sent = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
parts = urlsplit(url)
target = parts.path + ("?" + parts.query if parts.query else "")
sock = socket.create_connection((parts.hostname, parts.port))
head = f"PUT {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: {declared}\r\n\r\n"
sock.sendall(head.encode() + b"x" * sent)
if "--wait" not in sys.argv[6:]:
    sock.shutdown(socket.SHUT_WR)
sock.settimeout(10)
try:
    reply = sock.recv(4096).decode(errors="replace")
except OSError as e:
    reply = f"(no reply: {e})"
print(reply if reply else "(connection closed)")
