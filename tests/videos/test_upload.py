"""POST /video/ and the video storage: the filesystem under the video root, and S3 (a real
SeaweedFS, tests/media_servers/s3_fixtures.py). Each refusal is checked to leave nothing behind.
"""

from __future__ import annotations

import contextlib
import logging
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from pytest_django import Settings
from rest_framework.parsers import MultiPartParser
from rest_framework.test import APIClient

from runner.sources import SourceError, resolve_local
from sources import storage
from sources.selectors import UPLOAD_PREFIX
from sources.storage import ObjectStorageError, presigned_url, s3_configured
from testbed.processes import free_ports
from tests.media_servers.s3_fixtures import S3Server
from videos.content import NOT_A_VIDEO

pytestmark = pytest.mark.django_db

UPLOADED = re.compile(r"uploads/[0-9a-f]{32}\.mp4")
VIDEO_FIELDS = {"source", "size", "frames", "width", "height", "fps"}


@pytest.fixture
def upload_root(tmp_path: Path, settings: Settings) -> Path:
    """A video root of this test's own: what an upload stores there is this test's alone."""
    root = tmp_path / "videos"
    root.mkdir()
    settings.MISIS_VIDEO_ROOT = root
    return root


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def upload(api: APIClient, path: Path, name: str | None = None) -> Any:
    content = SimpleUploadedFile(name or path.name, path.read_bytes(), content_type="video/mp4")
    return api.post("/video/", {"file": content}, format="multipart")


def read_frames(url: str) -> int:
    cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
    try:
        assert cap.isOpened(), "OpenCV cannot open the URL"
        frames = 0
        while True:
            ok, _ = cap.read()
            if not ok:
                return frames
            frames += 1
    finally:
        cap.release()


def write_noisy_video(path: Path, frames: int) -> Path:
    """A few MB of video: noise compresses badly, so the size grows with the frames."""
    rng = np.random.default_rng(7)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 25.0, (640, 480))
    try:
        for _ in range(frames):
            writer.write(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))
    finally:
        writer.release()
    return path


# --- filesystem storage (the default) -----------------------------------------------------------


def test_upload_is_stored_under_the_video_root(
    api: APIClient, video_root: Path, upload_root: Path
) -> None:
    response = upload(api, video_root / "short.mp4")
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == VIDEO_FIELDS
    assert UPLOADED.fullmatch(body["source"])
    assert body["size"] == (video_root / "short.mp4").stat().st_size
    assert (body["frames"], body["width"], body["height"], body["fps"]) == (40, 320, 240, 25.0)
    # The source is what the runner reads: a relative path inside the video root.
    stored = resolve_local(body["source"])
    assert stored.read_bytes() == (video_root / "short.mp4").read_bytes()
    assert stored_files(upload_root) == [stored]


def test_uploaded_source_starts_a_scenario(
    api: APIClient, video_root: Path, upload_root: Path
) -> None:
    source = upload(api, video_root / "people.mp4").json()["source"]
    created = api.post("/scenario/", {"source": source}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["source"] == source


def test_the_clients_file_name_is_not_used(
    api: APIClient, video_root: Path, upload_root: Path
) -> None:
    response = upload(api, video_root / "short.mp4", name="../../etc/passwd.MP4")
    assert response.status_code == 201, response.content
    assert UPLOADED.fullmatch(response.json()["source"])
    assert [p.parent for p in stored_files(upload_root)] == [upload_root / "uploads"]


def test_a_big_upload_streams_through_a_temporary_file(
    api: APIClient, upload_root: Path, tmp_path: Path, settings: Settings
) -> None:
    big = write_noisy_video(tmp_path / "big.mp4", frames=30)
    assert big.stat().st_size > settings.FILE_UPLOAD_MAX_MEMORY_SIZE
    with big.open("rb") as f:
        response = api.post("/video/", {"file": f}, format="multipart")
    assert response.status_code == 201, response.content
    assert response.json()["frames"] == 30
    assert resolve_local(response.json()["source"]).read_bytes() == big.read_bytes()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        pytest.param("notes.mp4", b"not a video", NOT_A_VIDEO, id="text-named-mp4"),
        pytest.param("notes.txt", b"not a video", ".mp4", id="text-file"),
        pytest.param("clip.mkv", b"\x00\x00\x00\x18ftypisom" + bytes(4000), NOT_A_VIDEO,
                     id="mp4-header-then-nothing"),
        # FFmpeg would follow a playlist to the URLs in it, whatever the file is called.
        pytest.param("clip.mp4", b"#EXTM3U\n#EXTINF:1,\nhttp://127.0.0.1:9/x.ts\n", NOT_A_VIDEO,
                     id="hls-playlist"),
        pytest.param("clip", b"\x00\x00\x00\x18ftypisom", ".mp4", id="no-extension"),
    ],
)  # fmt: skip
def test_what_is_not_a_video_is_refused_and_not_stored(
    api: APIClient, upload_root: Path, name: str, content: bytes, message: str
) -> None:
    response = api.post("/video/", {"file": SimpleUploadedFile(name, content)}, format="multipart")
    assert response.status_code == 400, response.content
    assert set(response.json()) == {"file"}
    assert message in response.json()["file"][0]
    assert stored_files(upload_root) == []


def test_the_video_roots_notes_txt_is_refused(
    api: APIClient, video_root: Path, upload_root: Path
) -> None:
    for name in ("notes.txt", "notes.mp4"):
        response = upload(api, video_root / "notes.txt", name=name)
        assert response.status_code == 400, response.content
        assert set(response.json()) == {"file"}
    assert stored_files(upload_root) == []


def test_empty_missing_and_non_multipart_bodies_are_400(api: APIClient, upload_root: Path) -> None:
    empty = api.post("/video/", {"file": SimpleUploadedFile("a.mp4", b"")}, format="multipart")
    missing = api.post("/video/", {"other": "x"}, format="multipart")
    not_a_file = api.post("/video/", {"file": "short.mp4"}, format="multipart")
    as_json = api.post("/video/", {"file": "short.mp4"}, format="json")
    for response in (empty, missing, not_a_file, as_json):
        assert response.status_code == 400, response.content
        assert set(response.json()) == {"file"}, response.content
    assert "empty" in empty.json()["file"][0]
    assert stored_files(upload_root) == []


def test_an_upload_over_the_limit_is_413_and_not_stored(
    api: APIClient, video_root: Path, upload_root: Path, settings: Settings
) -> None:
    size = (video_root / "short.mp4").stat().st_size
    # Just over: the body's length passes the early check, the file's own size does not.
    settings.MISIS_UPLOAD_MAX_BYTES = size - 1
    response = upload(api, video_root / "short.mp4")
    assert response.status_code == 413, response.content
    assert set(response.json()) == {"file"}
    assert str(size - 1) in response.json()["file"][0]
    settings.MISIS_UPLOAD_MAX_BYTES = size
    assert upload(api, video_root / "short.mp4").status_code == 201
    assert len(stored_files(upload_root)) == 1


def test_a_body_over_the_limit_is_refused_before_it_is_read(
    api: APIClient,
    video_root: Path,
    upload_root: Path,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.MISIS_UPLOAD_MAX_BYTES = 1000

    def parse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the body was parsed")

    monkeypatch.setattr(MultiPartParser, "parse", parse)
    response = upload(api, video_root / "short.mp4")
    assert response.status_code == 413, response.content
    assert "1000 bytes" in response.json()["file"][0]
    assert stored_files(upload_root) == []


def test_no_token_is_401(video_root: Path, upload_root: Path) -> None:
    response = upload(APIClient(), video_root / "short.mp4")
    assert response.status_code == 401
    assert stored_files(upload_root) == []


def test_s3_sources_need_s3_configured() -> None:
    assert not s3_configured()
    with pytest.raises(SourceError, match="need object storage configured"):
        presigned_url("s3://misis-test/clip.mp4")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("s3://bucket", "needs a key"),
        ("s3://bucket/", "needs a key"),
        ("s3:///key", "needs a key"),
        ("s3://user:pw@bucket/key", "invalid bucket name"),
        ("http://bucket/key", "not an s3:// source"),
    ],
)
def test_malformed_s3_sources(source: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        storage.parse_s3(source)


def test_s3_sources_are_parsed_literally(settings: Settings) -> None:
    settings.MISIS_S3_BUCKETS = ["clips"]
    assert storage.parse_s3("S3://clips/a b/c#1.mp4") == ("clips", "a b/c#1.mp4")


# --- S3 storage (SeaweedFS) -------------------------------------------------------------------


def test_upload_to_s3_and_read_it_back_through_a_presigned_url(
    api: APIClient,
    video_root: Path,
    upload_root: Path,
    s3_settings: S3Server,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    assert s3_configured()
    response = upload(api, video_root / "short.mp4")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["frames"], body["width"], body["height"]) == (40, 320, 240)
    prefix = f"s3://{s3_settings.bucket}/"
    assert body["source"].startswith(prefix)
    key = body["source"].removeprefix(prefix)
    assert UPLOADED.fullmatch(key)
    assert s3_settings.exists(key)
    stored = s3_settings.client().get_object(Bucket=s3_settings.bucket, Key=key)
    assert stored["Body"].read() == (video_root / "short.mp4").read_bytes()
    assert stored["ContentType"] == "video/mp4"
    assert stored_files(upload_root) == []  # nothing on local disk

    url = presigned_url(body["source"], expires=600)
    assert url.startswith(f"{s3_settings.endpoint}/{s3_settings.bucket}/{key}?")
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url and "X-Amz-Expires=600" in url
    assert read_frames(url) == 40
    # The log names the user and the key, never the secret.
    assert key in caplog.text
    assert s3_settings.secret_key not in caplog.text


def test_a_big_upload_reaches_s3_in_parts(
    api: APIClient, tmp_path: Path, s3_settings: S3Server
) -> None:
    # Over boto3's 8 MiB multipart threshold.
    big = write_noisy_video(tmp_path / "big.mp4", frames=120)
    assert big.stat().st_size > 8 * 1024 * 1024
    with big.open("rb") as f:
        response = api.post("/video/", {"file": f}, format="multipart")
    assert response.status_code == 201, response.content
    key = response.json()["source"].removeprefix(f"s3://{s3_settings.bucket}/")
    head = s3_settings.client().head_object(Bucket=s3_settings.bucket, Key=key)
    assert head["ContentLength"] == big.stat().st_size
    assert read_frames(presigned_url(response.json()["source"])) == 120


def test_refused_uploads_leave_nothing_in_the_bucket(
    api: APIClient, video_root: Path, s3_settings: S3Server, settings: Settings
) -> None:
    before = s3_settings.keys(UPLOAD_PREFIX)
    assert upload(api, video_root / "notes.txt", name="notes.mp4").status_code == 400
    settings.MISIS_UPLOAD_MAX_BYTES = 100
    assert upload(api, video_root / "short.mp4").status_code == 413
    assert s3_settings.keys(UPLOAD_PREFIX) == before


def test_a_source_in_another_listed_bucket_is_read(
    s3_settings: S3Server, video_root: Path, settings: Settings
) -> None:
    settings.MISIS_S3_BUCKETS = [s3_settings.bucket, "other-footage"]
    client = s3_settings.client()
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket="other-footage")
    client.upload_file(str(video_root / "short.mp4"), "other-footage", "cams/2024/lobby cam.mp4")
    url = presigned_url("s3://other-footage/cams/2024/lobby cam.mp4")
    assert read_frames(url) == 40


def test_missing_keys_and_buckets_are_not_told_apart(
    s3_settings: S3Server, settings: Settings
) -> None:
    settings.MISIS_S3_BUCKETS = [s3_settings.bucket, "no-such-bucket"]
    unreadable = r": no such object, or not readable with the service's credentials$"
    with pytest.raises(SourceError, match=rf"^s3://misis-test/nope\.mp4{unreadable}") as exc:
        presigned_url(f"s3://{s3_settings.bucket}/nope.mp4")
    assert not isinstance(exc.value, ObjectStorageError)
    with pytest.raises(SourceError, match=rf"^s3://no-such-bucket/clip\.mp4{unreadable}") as exc:
        presigned_url("s3://no-such-bucket/clip.mp4")
    assert not isinstance(exc.value, ObjectStorageError)


@pytest.mark.parametrize(
    ("override", "code"),
    [
        ({"AWS_SECRET_ACCESS_KEY": "not-the-secret"}, "SignatureDoesNotMatch"),
        ({"AWS_ACCESS_KEY_ID": "nobody"}, "InvalidAccessKeyId"),
    ],
)
def test_wrong_credentials_are_503_and_named(
    api: APIClient,
    video_root: Path,
    s3_settings: S3Server,
    settings: Settings,
    override: dict[str, str],
    code: str,
) -> None:
    s3_settings.client().upload_file(str(video_root / "short.mp4"), s3_settings.bucket, "ok.mp4")
    before = s3_settings.keys(UPLOAD_PREFIX)
    s3_settings.apply(settings, **override)

    response = upload(api, video_root / "short.mp4")
    assert response.status_code == 503, response.content
    assert response.json() == {"detail": f"object storage refused the credentials ({code})"}
    assert s3_settings.keys(UPLOAD_PREFIX) == before
    with pytest.raises(ObjectStorageError, match=rf"refused the credentials \({code}\)"):
        presigned_url(f"s3://{s3_settings.bucket}/ok.mp4")
    assert s3_settings.secret_key not in response.content.decode()


def test_an_unreachable_store_is_503(
    api: APIClient, video_root: Path, upload_root: Path, s3_settings: S3Server, settings: Settings
) -> None:
    [port] = free_ports(1)  # nothing listens there
    s3_settings.apply(settings, AWS_S3_ENDPOINT_URL=f"http://127.0.0.1:{port}")
    response = upload(api, video_root / "short.mp4")
    assert response.status_code == 503, response.content
    assert response.json() == {
        "detail": f"object storage at http://127.0.0.1:{port} is unreachable"
    }
    with pytest.raises(ObjectStorageError, match="unreachable"):
        presigned_url(f"s3://{s3_settings.bucket}/short.mp4")
    assert stored_files(upload_root) == []


def test_the_server_is_a_real_seaweedfs(s3_server: S3Server) -> None:
    assert s3_server.proc.poll() is None
    assert s3_server.started_in < 30
    assert "SeaweedFS Mini" in s3_server.log_path.read_text(errors="replace")
