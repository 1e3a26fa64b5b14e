"""Listings against a model of S3's: random keys over a small alphabet
(with the delimiters themselves, a two-byte character, keys equal to a
prefix), then ListObjectsV2 and ListObjects pages of several sizes, for
several prefixes and delimiters (one and two characters, not ASCII), are
compared with what S3 would answer: objects and common prefixes in byte
order, each once across the pages.

usage: listing.py ENDPOINT BUCKET
"""
import random
import sys

from s3util import client

endpoint, bucket = sys.argv[1:3]
s3 = client(endpoint)
s3.create_bucket(Bucket=bucket)
rng = random.Random(5)
alphabet = ["a", "b", "/", "-", "é", "0"]
keys = set()
while len(keys) < 300:
    keys.add("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))))
for key in ["a/", "a/b", "a//", "é", "é/x", "ab", "abab"]:
    keys.add(key)
for key in sorted(keys):
    s3.put_object(Bucket=bucket, Key=key, Body=key.encode())


def model(prefix, delimiter):
    objects, prefixes = [], set()
    for key in sorted(keys):
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix):]
        if delimiter and delimiter in rest:
            prefixes.add(prefix + rest[: rest.index(delimiter) + len(delimiter)])
        else:
            objects.append(key)
    return objects, sorted(prefixes)


def listed(prefix, delimiter, page, v2):
    objects, prefixes, token, pages = [], [], None, 0
    while True:
        args = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": page}
        if delimiter:
            args["Delimiter"] = delimiter
        if v2:
            if token:
                args["ContinuationToken"] = token
            answer = s3.list_objects_v2(**args)
        else:
            if token:
                args["Marker"] = token
            answer = s3.list_objects(**args)
        got = [o["Key"] for o in answer.get("Contents", [])]
        cps = [p["Prefix"] for p in answer.get("CommonPrefixes", [])]
        assert len(got) + len(cps) <= page, f"{len(got) + len(cps)} entries in a page of {page}"
        objects += got
        prefixes += cps
        pages += 1
        assert pages < 1000, "the listing does not end"
        if not answer.get("IsTruncated"):
            return objects, prefixes
        if v2:
            token = answer["NextContinuationToken"]
        else:
            token = answer.get("NextMarker") or max(got + cps)


checked = 0
for prefix in ["", "a", "a/", "b/-", "é", "zzz"]:
    for delimiter in ["", "/", "-", "é", "ab", "0/"]:
        want = model(prefix, delimiter)
        for page in [1, 2, 7, 1000]:
            for v2 in [True, False]:
                if not v2 and not delimiter and page < 7:
                    continue
                got = listed(prefix, delimiter, page, v2)
                assert got == want, (
                    f"prefix {prefix!r} delimiter {delimiter!r} page {page} v2 {v2}: "
                    f"got objects {got[0]}, want {want[0]}; "
                    f"got prefixes {got[1]}, want {want[1]}"
                )
                checked += 1
print(f"{checked} listings match the model")
print("OK")
