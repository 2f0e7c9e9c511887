"""Create the S3 bucket named by AWS_STORAGE_BUCKET_NAME when it is missing (compose: s3-init).

Waits for the store to answer (up to MISIS_S3_WAIT seconds, default 120). Credentials and the
endpoint come from the usual AWS_* variables, as for the application.
"""

from __future__ import annotations

import os
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError


def main() -> int:
    bucket = os.environ.get("AWS_STORAGE_BUCKET_NAME", "")
    if not bucket:
        print("AWS_STORAGE_BUCKET_NAME is empty: filesystem storage, nothing to create")
        return 0
    region = os.environ.get("AWS_S3_REGION_NAME") or None
    create_args: dict[str, object] = {"Bucket": bucket}
    if region and region != "us-east-1":
        create_args["CreateBucketConfiguration"] = {"LocationConstraint": region}
    client = boto3.client(
        "s3",
        endpoint_url=os.environ.get("AWS_S3_ENDPOINT_URL") or None,
        region_name=region,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
    )
    deadline = time.monotonic() + float(os.environ.get("MISIS_S3_WAIT", "120"))
    while True:
        try:
            try:
                client.head_bucket(Bucket=bucket)
                print(f"bucket {bucket} exists")
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
                    raise
                client.create_bucket(**create_args)
                print(f"bucket {bucket} created")
            return 0
        except (BotoCoreError, ClientError) as exc:
            if time.monotonic() > deadline:
                print(f"cannot reach the S3 store or create {bucket}: {exc}", file=sys.stderr)
                return 1
            time.sleep(2)


if __name__ == "__main__":
    sys.exit(main())
