"""Stored footage in a real S3 store (SeaweedFS): upload through the API, then a scenario on the
``s3://`` source it returns, read by a runner process through a presigned URL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from scenarios.models import Prediction
from testbed.stack import Stack
from tests.conftest import client_for
from tests.integration.api import create, wait_status
from tests.integration.conftest import _stack
from tests.media_servers.s3_fixtures import S3Server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3_stack(
    request: pytest.FixtureRequest,
    django_db_setup: None,
    video_root: Path,
    tmp_path_factory: pytest.TempPathFactory,
    s3_server: S3Server,
) -> Iterator[Stack]:
    """The mock stack, its runners configured for the S3 store."""
    yield from _stack(request, video_root, tmp_path_factory, **s3_server.env())


@pytest.fixture
def client(
    s3_stack: Stack, s3_settings: S3Server, transactional_db: None, django_user_model: type[User]
) -> APIClient:
    s3_stack.ensure_running()
    return client_for(django_user_model.objects.create_user(username="archivist"))


def test_uploaded_video_runs_from_s3_to_the_end(
    client: APIClient, s3_settings: S3Server, video_root: Path
) -> None:
    body = (video_root / "short.mp4").read_bytes()
    resp = client.post(
        "/video/",
        {"file": SimpleUploadedFile("clip.mp4", body, content_type="video/mp4")},
        format="multipart",
    )
    assert resp.status_code == 201, resp.content
    video = resp.json()
    assert video["source"].startswith(f"s3://{s3_settings.bucket}/") and video["frames"] == 40
    assert s3_settings.exists(video["source"].split("/", 3)[3])

    sid = create(client, video["source"])
    done = wait_status(client, sid, "inactive", timeout=30)
    assert done["stop_reason"] == "end_of_stream", done["error"]
    assert done["frames_processed"] == 40 and done["stream"] is None
    assert list(
        Prediction.objects.filter(scenario_id=sid)
        .order_by("frame_index")
        .values_list("frame_index", flat=True)
    ) == list(range(40))


def test_missing_object_ends_with_the_one_unreadable_text(
    client: APIClient, s3_settings: S3Server
) -> None:
    source = f"s3://{s3_settings.bucket}/no/such/clip.mp4"
    sid = create(client, source)
    done = wait_status(client, sid, "inactive", timeout=30)
    assert done["stop_reason"] == "error"
    # The same text whether the key, or the bucket, is missing or the read refused.
    assert done["error"] == (
        f"{source}: no such object, or not readable with the service's credentials"
    )


def test_a_bucket_not_configured_is_refused_whether_it_exists_or_not(
    client: APIClient, s3_settings: S3Server, video_root: Path
) -> None:
    other = s3_settings.client()
    with contextlib.suppress(other.exceptions.BucketAlreadyOwnedByYou):
        other.create_bucket(Bucket="other-footage")
    other.upload_file(str(video_root / "short.mp4"), "other-footage", "secret.mp4")
    answers = [
        client.post("/scenario/", {"source": f"s3://{bucket}/secret.mp4"}, format="json")
        for bucket in ("other-footage", "no-such-bucket")
    ]
    assert [a.status_code for a in answers] == [400, 400]
    texts = [a.json()["source"][0] for a in answers]
    assert texts[0] == texts[1].replace("no-such-bucket", "other-footage")
    assert "MISIS_S3_BUCKETS" in texts[0]


def test_another_users_upload_is_not_there_for_them(
    client: APIClient, s3_settings: S3Server, video_root: Path, django_user_model: type[User]
) -> None:
    body = (video_root / "short.mp4").read_bytes()
    resp = client.post(
        "/video/", {"file": SimpleUploadedFile("clip.mp4", body)}, format="multipart"
    )
    assert resp.status_code == 201, resp.content
    source = resp.json()["source"]
    intruder = client_for(django_user_model.objects.create_user(username="intruder"))
    theirs = intruder.post("/scenario/", {"source": source}, format="json")
    missing = intruder.post("/scenario/", {"source": source[:-8] + "0000.mp4"}, format="json")
    assert theirs.status_code == missing.status_code == 400
    unreadable = ": no such object, or not readable with the service's credentials"
    assert theirs.json() == {"source": [source + unreadable]}
    assert missing.json() == {"source": [source[:-8] + "0000.mp4" + unreadable]}
