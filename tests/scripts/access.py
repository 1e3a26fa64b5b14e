#!/usr/bin/env python3
"""Two users and an anonymous client against one cluster, with boto3 the
way applications use it: ownership, ACLs, bucket policies, public access
blocks, the expected-owner header, key revocation, DeleteBucket with an
unfinished upload. Exits non-zero with the failed expectation.

usage: access.py ENDPOINT
Environment: A_ID A_KEY A_SECRET, B_ID B_KEY B_SECRET (two users),
REVOKED_KEY REVOKED_SECRET (a key revoked before its first use).
"""
import json
import os
import sys

import boto3
from botocore import UNSIGNED
from botocore.config import Config

import s3util
from s3util import settle

endpoint = sys.argv[1]
env = os.environ


def client(key=None, secret=None):
    config = Config(signature_version=UNSIGNED if key is None else "s3v4",
                    s3={"addressing_style": "path"}, retries={"max_attempts": 1})
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret, config=config)


a = client(env["A_KEY"], env["A_SECRET"])
b = client(env["B_KEY"], env["B_SECRET"])
anon = client()
A_ID, B_ID = env["A_ID"], env["B_ID"]


def refused(call, code="AccessDenied", **kwargs):
    """The call fails with `code` (403 unless told otherwise)."""
    s3util.refused(code, call, **kwargs)


# Ownership: each user lists their own buckets; names are global.
a.create_bucket(Bucket="a-private")
b.create_bucket(Bucket="b-own")
names = lambda c: sorted(x["Name"] for x in c.list_buckets()["Buckets"])
assert "a-private" in names(a) and "b-own" not in names(a), names(a)
assert "b-own" in names(b) and "a-private" not in names(b), names(b)
assert a.list_buckets()["Owner"]["ID"] == A_ID
refused(b.create_bucket, "BucketAlreadyExists", Bucket="a-private")
refused(a.create_bucket, "BucketAlreadyOwnedByYou", Bucket="a-private")
refused(anon.list_buckets)

# A private bucket: B can do nothing, and no version appears.
a.put_object(Bucket="a-private", Key="doc", Body=b"A's words")
refused(b.list_objects_v2, Bucket="a-private")
refused(b.get_object, Bucket="a-private", Key="doc")
refused(b.head_object, "403", Bucket="a-private", Key="doc")
refused(b.put_object, Bucket="a-private", Key="doc", Body=b"B's words")
refused(b.put_object, Bucket="a-private", Key="new", Body=b"B's words")
refused(b.delete_object, Bucket="a-private", Key="doc")
errors = b.delete_objects(Bucket="a-private", Delete={"Objects": [{"Key": "doc"}]}).get("Errors", [])
assert [(e["Key"], e["Code"]) for e in errors] == [("doc", "AccessDenied")], errors
refused(b.get_bucket_acl, Bucket="a-private")
refused(b.put_bucket_acl, Bucket="a-private", ACL="public-read")
refused(b.get_bucket_policy, Bucket="a-private")
refused(b.delete_bucket, Bucket="a-private")
refused(b.copy_object, Bucket="b-own", Key="stolen", CopySource={"Bucket": "a-private", "Key": "doc"})
refused(anon.get_object, Bucket="a-private", Key="doc")
refused(anon.list_objects_v2, Bucket="a-private")
versions = a.list_object_versions(Bucket="a-private").get("Versions", [])
assert [v["Key"] for v in versions] == ["doc"], versions
assert a.get_object(Bucket="a-private", Key="doc")["Body"].read() == b"A's words"
assert b.list_objects_v2(Bucket="b-own").get("KeyCount", 0) == 0, "the refused copy stored nothing"

# The owner's ACL as S3 shows it.
acl = a.get_bucket_acl(Bucket="a-private")
assert acl["Owner"]["ID"] == A_ID
assert [(g["Grantee"].get("ID"), g["Permission"]) for g in acl["Grants"]] == [(A_ID, "FULL_CONTROL")], acl

# Grants: B may read the bucket listing and one object, and still not write.
a.put_bucket_acl(Bucket="a-private", GrantRead=f'id="{B_ID}"')
settle()
b.list_objects_v2(Bucket="a-private")
refused(b.get_object, Bucket="a-private", Key="doc")
a.put_object_acl(Bucket="a-private", Key="doc", GrantRead=f'id="{B_ID}"')
assert b.get_object(Bucket="a-private", Key="doc")["Body"].read() == b"A's words"
refused(b.put_object, Bucket="a-private", Key="doc", Body=b"B's words")
refused(b.get_object_acl, Bucket="a-private", Key="doc")
grants = a.get_object_acl(Bucket="a-private", Key="doc")["Grants"]
assert {(g["Grantee"].get("ID"), g["Permission"]) for g in grants} == {(A_ID, "FULL_CONTROL"), (B_ID, "READ")}, grants
refused(a.put_object_acl, "InvalidArgument", Bucket="a-private", Key="doc", GrantRead='id="nobody"')

# Public buckets and objects: anonymous reads only where granted.
a.create_bucket(Bucket="a-public", ACL="public-read")
a.put_object(Bucket="a-public", Key="open", Body=b"for all", ACL="public-read")
a.put_object(Bucket="a-public", Key="closed", Body=b"for A")
assert anon.get_object(Bucket="a-public", Key="open")["Body"].read() == b"for all"
assert [o["Key"] for o in anon.list_objects_v2(Bucket="a-public")["Contents"]] == ["closed", "open"]
refused(anon.get_object, Bucket="a-public", Key="closed")
refused(anon.put_object, Bucket="a-public", Key="graffiti", Body=b"x")
assert b.get_object(Bucket="a-public", Key="open")["Body"].read() == b"for all"

# A policy: anonymous reads under pub/, and a Deny for B that beats B's grant.
a.put_object(Bucket="a-private", Key="pub/x", Body=b"published")
policy = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "PublicPrefix", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
         "Resource": "arn:aws:s3:::a-private/pub/*"},
        {"Sid": "NotB", "Effect": "Deny", "Principal": {"AWS": [f"arn:aws:iam:::user/{env['B_NAME']}"]},
         "Action": "s3:GetObject", "Resource": "arn:aws:s3:::a-private/doc"},
    ],
}
a.put_bucket_policy(Bucket="a-private", Policy=json.dumps(policy))
settle()
assert json.loads(a.get_bucket_policy(Bucket="a-private")["Policy"]) == policy
assert anon.get_object(Bucket="a-private", Key="pub/x")["Body"].read() == b"published"
refused(anon.get_object, Bucket="a-private", Key="doc")
refused(b.get_object, Bucket="a-private", Key="doc")
assert a.get_bucket_policy_status(Bucket="a-private")["PolicyStatus"]["IsPublic"] is True
refused(a.put_bucket_policy, "MalformedPolicy", Bucket="a-private", Policy='{"Statement": "nonsense"}')
refused(a.put_bucket_policy, "MalformedPolicy", Bucket="a-private",
        Policy=json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                          "Resource": "arn:aws:s3:::b-own/*"}]}))
# An owner's own Deny applies to the owner too.
a.put_bucket_policy(Bucket="a-private", Policy=json.dumps({"Statement": [
    {"Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::a-private/doc"}]}))
settle()
refused(a.delete_object, Bucket="a-private", Key="doc")
a.delete_bucket_policy(Bucket="a-private")
settle()
refused(a.get_bucket_policy, "NoSuchBucketPolicy", Bucket="a-private")
refused(anon.get_object, Bucket="a-private", Key="pub/x")

# Public access block.
refused(a.get_public_access_block, "NoSuchPublicAccessBlockConfiguration", Bucket="a-public")
a.put_public_access_block(Bucket="a-public", PublicAccessBlockConfiguration={
    "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
settle()
got = a.get_public_access_block(Bucket="a-public")["PublicAccessBlockConfiguration"]
assert got == {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
               "RestrictPublicBuckets": True}, got
refused(anon.get_object, Bucket="a-public", Key="open")  # public grants ignored
refused(a.put_object_acl, Bucket="a-public", Key="closed", ACL="public-read")
refused(a.put_bucket_policy, Bucket="a-public", Policy=json.dumps({"Statement": [
    {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::a-public/*"}]}))
a.delete_public_access_block(Bucket="a-public")
settle()
assert anon.get_object(Bucket="a-public", Key="open")["Body"].read() == b"for all"

# x-amz-expected-bucket-owner.
a.get_object(Bucket="a-private", Key="doc", ExpectedBucketOwner=A_ID)
refused(a.get_object, Bucket="a-private", Key="doc", ExpectedBucketOwner=B_ID)

# A revoked key signs nothing.
revoked = client(env["REVOKED_KEY"], env["REVOKED_SECRET"])
refused(revoked.list_buckets, "InvalidAccessKeyId")

# Tags with a write need s3:PutObjectTagging, as in S3: a write grant is
# not enough; a policy can add it.
a.create_bucket(Bucket="a-shared")
a.put_bucket_acl(Bucket="a-shared", GrantWrite=f'id="{B_ID}"', GrantFullControl=f'id="{A_ID}"')
settle()
b.put_object(Bucket="a-shared", Key="plain", Body=b"b")
refused(b.put_object, Bucket="a-shared", Key="tagged", Body=b"b", Tagging="k=v")
refused(b.create_multipart_upload, Bucket="a-shared", Key="tagged", Tagging="k=v")
a.put_bucket_policy(Bucket="a-shared", Policy=json.dumps({"Statement": [
    {"Effect": "Allow", "Principal": {"AWS": [f"arn:aws:iam:::user/{env['B_NAME']}"]},
     "Action": "s3:PutObjectTagging", "Resource": "arn:aws:s3:::a-shared/*"}]}))
settle()
b.put_object(Bucket="a-shared", Key="tagged", Body=b"b", Tagging="k=v")
assert a.get_object_tagging(Bucket="a-shared", Key="tagged")["TagSet"] == [{"Key": "k", "Value": "v"}]

# DeleteBucket aborts unfinished uploads, as S3 does.
b.create_bucket(Bucket="b-uploads")
b.create_multipart_upload(Bucket="b-uploads", Key="never-finished")
b.delete_bucket(Bucket="b-uploads")
assert "b-uploads" not in names(b)
print("OK")
