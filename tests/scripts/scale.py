"""bench-scale's S3 side (driven by bench/src/bench_scale.rs).

`scale.py fill ENDPOINT BUCKET OBJECTS DIRS` stores OBJECTS small objects
(`dNNNN/fNNNNNNN`, 32 bytes each) spread evenly over DIRS directories,
1,000 per call of the bucketfs batch extension, four calls in flight.

`scale.py measure ENDPOINT BUCKET DIRS` times, through boto3 on one
connection: HEAD and GET of random existing keys (p50/p99), the top-level
listing with a delimiter (DIRS common prefixes, one page when DIRS <=
1,000), a listing of one directory, and a flat listing of the first 100,000
keys (keys/s). Prints one JSON line.

Credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
"""
import json
import os
import random
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

BATCH = 1000


def key_of(i, objects, dirs):
    per_dir = max(1, objects // dirs)
    return f"d{min(i // per_dir, dirs - 1):04}/f{i:07}"


def fill(endpoint, bucket, objects, dirs):
    creds = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    url = f"{endpoint}/{bucket}?bucketfs-batch"
    done = [0]
    lock = threading.Lock()

    def call(start):
        keys = [key_of(i, objects, dirs) for i in range(start, min(start + BATCH, objects))]
        data = b"".join(k.encode().ljust(32, b".") for k in keys)
        manifest = json.dumps([{"key": k, "size": 32} for k in keys], separators=(",", ":"))
        body = manifest.encode() + b"\n" + data
        request = AWSRequest(method="POST", url=url, data=body,
                             headers={"content-type": "application/octet-stream"})
        S3SigV4Auth(creds, "s3", "us-east-1").add_auth(request)
        for attempt in range(5):
            try:
                prepared = urllib.request.Request(url, data=body, headers=dict(request.headers.items()),
                                                  method="POST")
                with urllib.request.urlopen(prepared, timeout=120) as resp:
                    answer = json.loads(resp.read())
                failed = [r for r in answer["results"] if "error" in r]
                if failed:
                    raise RuntimeError(f"batch at {start}: {failed[0]}")
                break
            except (OSError, urllib.error.HTTPError) as e:
                if attempt == 4:
                    raise
                time.sleep(1 + attempt)
                # The signature's date may be stale by now.
                request = AWSRequest(method="POST", url=url, data=body,
                                     headers={"content-type": "application/octet-stream"})
                S3SigV4Auth(creds, "s3", "us-east-1").add_auth(request)
        with lock:
            done[0] += len(keys)
            if done[0] % 500_000 < BATCH:
                print(f"filled {done[0]}", file=sys.stderr, flush=True)

    started = time.time()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(call, range(0, objects, BATCH)))
    took = time.time() - started
    print(json.dumps({"objects": objects, "fill_secs": round(took, 1), "objects_per_sec": round(objects / took)}))


def percentiles(samples):
    samples = sorted(samples)
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))] * 1000
    return {"p50_ms": round(pick(0.5), 2), "p99_ms": round(pick(0.99), 2)}


def timed(call, n):
    out = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        out.append(time.perf_counter() - started)
    return out


def measure(endpoint, bucket, dirs):
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    first = s3.list_objects_v2(Bucket=bucket, Prefix="d0000/", MaxKeys=1000)["Contents"]
    top = s3.list_objects_v2(Bucket=bucket, Delimiter="/", MaxKeys=1000)
    prefixes = [p["Prefix"] for p in top.get("CommonPrefixes", [])]
    rng = random.Random(1)
    # Keys of random directories (each directory's first page).
    keys = []
    for prefix in rng.sample(prefixes, min(20, len(prefixes))):
        page = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1000).get("Contents", [])
        keys.extend(o["Key"] for o in page)
    s3.head_object(Bucket=bucket, Key=keys[0])
    head = timed(lambda: s3.head_object(Bucket=bucket, Key=rng.choice(keys)), 2000)
    get = timed(lambda: s3.get_object(Bucket=bucket, Key=rng.choice(keys))["Body"].read(), 500)
    delimiter = timed(lambda: s3.list_objects_v2(Bucket=bucket, Delimiter="/", MaxKeys=1000), 20)
    one_dir = timed(lambda: s3.list_objects_v2(Bucket=bucket, Prefix=rng.choice(prefixes), MaxKeys=1000), 50)
    started, listed = time.perf_counter(), 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, PaginationConfig={"PageSize": 1000}):
        listed += len(page.get("Contents", []))
        if listed >= 100_000:
            break
    flat = listed / (time.perf_counter() - started)
    print(json.dumps({
        "common_prefixes": len(prefixes),
        "first_dir_keys": len(first),
        "head": percentiles(head),
        "get": percentiles(get),
        "delimiter_listing": percentiles(delimiter),
        "directory_listing": percentiles(one_dir),
        "flat_listing_keys_per_sec": round(flat),
    }))


if __name__ == "__main__":
    command, endpoint, bucket = sys.argv[1:4]
    if command == "fill":
        fill(endpoint, bucket, int(sys.argv[4]), int(sys.argv[5]))
    else:
        measure(endpoint, bucket, int(sys.argv[4]))
