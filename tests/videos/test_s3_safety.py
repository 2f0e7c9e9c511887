"""s3:// sources against a hostile user, on a real SeaweedFS (tests/media_servers/s3_fixtures.py):
only the configured buckets are read, keys that a store would rewrite are refused, and the
errors do not tell whether a bucket or an object exists.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from pytest_django import Settings
from rest_framework.test import APIClient

from misis.logs import scenario_context
from runner.sources import SourceError
from sources.storage import ObjectStorageError, parse_s3, presigned_url
from tests.media_servers.s3_fixtures import S3Server
from tests.videos.test_upload import read_frames

pytestmark = pytest.mark.django_db

OTHER = "other-footage"  # a bucket the service's credentials read, but not one it is told to use


@pytest.fixture
def other_bucket(s3_settings: S3Server, video_root: Path) -> str:
    """A bucket beside the upload bucket, in the same store, holding a video."""
    client = s3_settings.client()
    if OTHER not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket=OTHER)
    client.upload_file(str(video_root / "short.mp4"), OTHER, "cams/lobby.mp4")
    return OTHER


def create(api: APIClient, source: str) -> Any:
    return api.post("/scenario/", {"source": source}, format="json")


# --- only the configured buckets ----------------------------------------------------------------


def test_a_bucket_not_configured_is_refused_at_create_time(
    api: APIClient, other_bucket: str, s3_settings: S3Server
) -> None:
    existing = create(api, f"s3://{other_bucket}/cams/lobby.mp4")
    missing = create(api, "s3://no-such-bucket/cams/lobby.mp4")
    assert existing.status_code == missing.status_code == 400, existing.content
    # The same answer for a bucket that exists and one that does not: no bucket oracle.
    shown = existing.json()["source"][0]
    assert "not one that s3 sources may name" in shown and "MISIS_S3_BUCKETS" in shown
    assert missing.json()["source"][0] == shown.replace(other_bucket, "no-such-bucket")
    # The upload bucket itself is fine.
    assert create(api, f"s3://{s3_settings.bucket}/cams/lobby.mp4").status_code == 201


def test_a_bucket_not_configured_is_refused_at_presign_time(
    other_bucket: str, s3_settings: S3Server, settings: Settings
) -> None:
    # A scenario stored while the bucket was listed (or before the list existed) is checked
    # again when the runner opens it.
    settings.MISIS_S3_BUCKETS = [s3_settings.bucket, other_bucket]
    assert read_frames(presigned_url(f"s3://{other_bucket}/cams/lobby.mp4")) == 40
    settings.MISIS_S3_BUCKETS = [s3_settings.bucket]
    with pytest.raises(SourceError, match="not one that s3 sources may name") as exc:
        presigned_url(f"s3://{other_bucket}/cams/lobby.mp4")
    assert not isinstance(exc.value, ObjectStorageError)


def test_bucket_names_are_compared_exactly(other_bucket: str, settings: Settings) -> None:
    settings.MISIS_S3_BUCKETS = [other_bucket]
    for source in ("s3://OTHER-FOOTAGE/cams/lobby.mp4", "s3://other-footage./cams/lobby.mp4"):
        with pytest.raises(SourceError, match="not one that s3 sources may name"):
            parse_s3(source)


def test_no_bucket_configured_means_no_s3_sources(api: APIClient, settings: Settings) -> None:
    settings.MISIS_S3_BUCKETS = []
    with pytest.raises(SourceError, match="object storage configured"):
        parse_s3("s3://misis-test/clip.mp4")
    response = create(api, "s3://misis-test/clip.mp4")
    assert response.status_code == 400
    assert "object storage configured" in response.json()["source"][0]


def test_an_empty_list_turns_s3_sources_off_with_s3_configured(
    api: APIClient, s3_settings: S3Server, settings: Settings
) -> None:
    settings.MISIS_S3_BUCKETS = []
    response = create(api, f"s3://{s3_settings.bucket}/clip.mp4")
    assert response.status_code == 400
    assert "MISIS_S3_BUCKETS" in response.json()["source"][0]
    with pytest.raises(SourceError, match="MISIS_S3_BUCKETS"):
        presigned_url(f"s3://{s3_settings.bucket}/clip.mp4")


# --- keys a store rewrites ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "/uploads/clip.mp4",  # SeaweedFS serves uploads/clip.mp4 for this...
        "uploads//clip.mp4",  # ...and for this
        "uploads\\clip.mp4",  # ...and for this
        "./uploads/clip.mp4",
        "uploads/./clip.mp4",
        "x/../uploads/clip.mp4",
        "../other-footage/cams/lobby.mp4",
        "uploads/",
    ],
)
def test_keys_that_stores_rewrite_are_refused(
    api: APIClient, s3_settings: S3Server, key: str
) -> None:
    source = f"s3://{s3_settings.bucket}/{key}"
    with pytest.raises(SourceError, match="s3 key must not"):
        parse_s3(source)
    with pytest.raises(SourceError, match="s3 key must not"):
        presigned_url(source)
    response = create(api, source)
    assert response.status_code == 400
    assert "s3 key must not" in response.json()["source"][0]


def test_the_store_really_rewrites_such_keys(s3_settings: S3Server, video_root: Path) -> None:
    """Why the keys above are refused: the store reads another object than the key says (an
    ownership check on the literal key would be bypassed)."""
    client = s3_settings.client()
    client.upload_file(str(video_root / "short.mp4"), s3_settings.bucket, "rewrite/clip.mp4")
    for key in ("/rewrite/clip.mp4", "rewrite//clip.mp4", "rewrite\\clip.mp4"):
        assert client.head_object(Bucket=s3_settings.bucket, Key=key)["ContentLength"] > 0


# --- error texts that do not tell what exists ---------------------------------------------------


def shown_error(source: str) -> SourceError:
    with pytest.raises(SourceError) as exc:
        presigned_url(source)
    return exc.value


def test_missing_and_unreadable_objects_read_the_same(
    s3_settings: S3Server,
    other_bucket: str,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    # The service's identity may only read the upload bucket: the other bucket answers 403.
    s3_settings.apply(
        settings,
        AWS_ACCESS_KEY_ID=s3_settings.reader_key,
        AWS_SECRET_ACCESS_KEY=s3_settings.reader_secret,
    )
    settings.MISIS_S3_BUCKETS = [s3_settings.bucket, other_bucket, "gone-bucket"]
    s3_settings.client().upload_file(
        str(Path(settings.MISIS_VIDEO_ROOT) / "short.mp4"), s3_settings.bucket, "cams/ok.mp4"
    )
    assert read_frames(presigned_url(f"s3://{s3_settings.bucket}/cams/ok.mp4")) == 40

    sources = [
        f"s3://{s3_settings.bucket}/cams/missing.mp4",  # 404, no such key
        f"s3://{other_bucket}/cams/lobby.mp4",  # 403, exists
        f"s3://{other_bucket}/cams/missing.mp4",  # 403, does not exist
        "s3://gone-bucket/cams/lobby.mp4",  # no such bucket
    ]
    with scenario_context("5cea0000-0000-0000-0000-000000000001"):
        errors = [shown_error(source) for source in sources]
    texts = {
        str(error).replace(source, "SOURCE") for error, source in zip(errors, sources, strict=True)
    }
    assert texts == {"SOURCE: no such object, or not readable with the service's credentials"}, (
        texts
    )
    assert not any(isinstance(error, ObjectStorageError) for error in errors)
    # The operator still learns the reason, with the scenario.
    assert "5cea0000-0000-0000-0000-000000000001" in caplog.text
    assert "no such key" in caplog.text
    assert "AccessDenied" in caplog.text  # what this identity gets for the missing bucket too
    assert s3_settings.reader_secret not in caplog.text
