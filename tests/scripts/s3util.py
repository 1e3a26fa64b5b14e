"""What the boto3 test scripts share: a client as the tests configure it,
the check that a call is refused with a given code, and the wait for the
routers' bucket cache. Imported from the scripts' own directory."""
import time

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

#: Path style, no retries: a refused request must show, not be retried.
CONFIG = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1})


def client(endpoint, anonymous=False, signature_version=None, **kwargs):
    """An S3 client of `endpoint` (credentials from the environment unless
    given as aws_access_key_id/aws_secret_access_key, or none at all)."""
    config = CONFIG
    if anonymous:
        config = config.merge(Config(signature_version=UNSIGNED))
    elif signature_version:
        config = config.merge(Config(signature_version=signature_version))
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", config=config, **kwargs)


def refused(code, call, **kwargs):
    """`call(**kwargs)` fails with the S3 error `code`; returns the error
    response."""
    try:
        call(**kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"{call.__name__} {kwargs}: {got}, wanted {code}"
        return e.response
    raise AssertionError(f"{call.__name__} {kwargs} succeeded; wanted {code}")


def settle():
    """Waits out the routers' one-second cache of a bucket's settings (ACL,
    policy, CORS, ...): the next request may reach the router that did not
    make the change."""
    time.sleep(1.2)
