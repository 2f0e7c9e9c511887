"""Uploads belong to their uploader: another user's upload reads exactly like one that does not
exist, on the filesystem and on S3 (a real SeaweedFS). The per-user upload quota holds against
concurrent uploads. Each refusal is checked to store nothing.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, connection, transaction
from pytest_django import Settings
from rest_framework.parsers import MultiPartParser
from rest_framework.test import APIClient

from sources.models import Upload
from sources.selectors import upload_visible
from tests.media_servers.s3_fixtures import S3Server
from tests.videos.test_upload import stored_files, upload
from videos.content import VideoTooLarge
from videos.services import video_store

pytestmark = pytest.mark.django_db


@pytest.fixture
def upload_root(tmp_path: Path, settings: Settings, video_root: Path) -> Path:
    """A video root of this test's own, holding the shared samples (as links)."""
    root = tmp_path / "videos"
    root.mkdir()
    for sample in video_root.iterdir():
        if sample.is_file():  # the samples, not what other tests left there (an uploads/)
            (root / sample.name).symlink_to(sample)
    settings.MISIS_VIDEO_ROOT = root
    return root


def create(api: APIClient, source: str) -> Any:
    return api.post("/scenario/", {"source": source}, format="json")


def uploaded(api: APIClient, root: Path, name: str = "short.mp4") -> str:
    response = upload(api, root / name)
    assert response.status_code == 201, response.content
    return str(response.json()["source"])


def never_uploaded(source: str) -> str:
    """A source of the same shape as ``source`` that nobody uploaded."""
    stem = source.rsplit("/", 1)[1].split(".")[0]
    return source.replace(stem, "0" * len(stem))


# --- the owner is recorded ----------------------------------------------------------------------


def test_an_upload_is_recorded_with_its_owner(
    api: APIClient, user: User, upload_root: Path
) -> None:
    source = uploaded(api, upload_root)
    [row] = Upload.objects.all()
    assert (row.owner, row.source, row.size) == (
        user,
        source,
        (upload_root / "short.mp4").stat().st_size,
    )
    assert row.created_at is not None


def test_upload_names_are_random_and_long(api: APIClient, upload_root: Path) -> None:
    names = {uploaded(api, upload_root) for _ in range(3)}
    assert len(names) == 3
    for name in names:
        stem = name.removeprefix("uploads/").removesuffix(".mp4")
        assert len(stem) == 32 and int(stem, 16) >= 0  # 128 bits


# --- another user's upload does not exist for you -----------------------------------------------


def test_another_users_upload_reads_like_a_missing_one(
    api: APIClient, other_api: APIClient, upload_root: Path
) -> None:
    source = uploaded(api, upload_root)
    theirs = create(other_api, source)
    missing_source = never_uploaded(source)
    missing = create(other_api, missing_source)
    assert theirs.status_code == missing.status_code == 400, theirs.content
    assert theirs.json() == {"source": [f"file not found in the video root: {source}"]}
    assert missing.json() == {"source": [f"file not found in the video root: {missing_source}"]}
    # The owner starts a scenario on it.
    assert create(api, source).status_code == 201


@pytest.mark.parametrize(
    "spelling",
    ["./{}", "uploads//{name}", "uploads/./{name}", "link.mp4"],
)
def test_another_spelling_of_an_upload_is_the_upload(
    api: APIClient, other_api: APIClient, upload_root: Path, spelling: str
) -> None:
    source = uploaded(api, upload_root)
    name = source.removeprefix("uploads/")
    (upload_root / "link.mp4").symlink_to(upload_root / source)
    spelt = spelling.format(source, name=name)
    response = create(other_api, spelt)
    assert response.status_code == 400, response.content
    assert response.json() == {"source": [f"file not found in the video root: {spelt}"]}


def test_staff_see_every_upload(api: APIClient, staff_api: APIClient, upload_root: Path) -> None:
    assert create(staff_api, uploaded(api, upload_root)).status_code == 201


def test_an_upload_with_no_owner_is_staffs_only(
    api: APIClient, staff_api: APIClient, upload_root: Path
) -> None:
    """A file under uploads/ that no row names (stored before uploads had owners)."""
    (upload_root / "uploads").mkdir()
    (upload_root / "uploads" / "old.mp4").write_bytes((upload_root / "short.mp4").read_bytes())
    assert create(api, "uploads/old.mp4").status_code == 400
    assert create(staff_api, "uploads/old.mp4").status_code == 201


def test_upload_visible(
    api: APIClient, user: User, other_user: User, staff_user: User, upload_root: Path
) -> None:
    from django.contrib.auth.models import AnonymousUser

    source = uploaded(api, upload_root)
    assert upload_visible(source=source, user=user)
    assert upload_visible(source=source, user=staff_user)
    for nobody in (other_user, None, AnonymousUser()):
        assert not upload_visible(source=source, user=nobody)
        # Not uploads: visible to all (other checks refuse what must be refused).
        for other in ("short.mp4", "rtsp://cam.lan/live", "../etc/passwd", "uploadsx.mp4"):
            assert upload_visible(source=other, user=nobody)
    assert not upload_visible(source="uploads", user=other_user)


def test_another_users_upload_in_s3_reads_like_a_missing_one(
    api: APIClient, other_api: APIClient, video_root: Path, s3_settings: S3Server
) -> None:
    source = uploaded(api, video_root)
    assert source.startswith(f"s3://{s3_settings.bucket}/uploads/")
    theirs = create(other_api, source)
    missing_source = never_uploaded(source)
    missing = create(other_api, missing_source)
    assert theirs.status_code == missing.status_code == 400, theirs.content
    unreadable = ": no such object, or not readable with the service's credentials"
    assert theirs.json() == {"source": [source + unreadable]}
    assert missing.json() == {"source": [missing_source + unreadable]}
    # Spelt so that the store reads the same object: refused for any key, stored or not.
    key = source.removeprefix(f"s3://{s3_settings.bucket}/")
    assert create(other_api, f"s3://{s3_settings.bucket}//{key}").status_code == 400
    assert create(other_api, source.replace("s3://", "S3://")).status_code == 400
    assert create(api, source).status_code == 201


# --- nothing left behind ------------------------------------------------------------------------


def test_a_failed_save_records_nothing(
    api: APIClient, video_root: Path, s3_settings: S3Server, settings: Settings
) -> None:
    s3_settings.apply(settings, AWS_SECRET_ACCESS_KEY="not-the-secret")
    assert upload(api, video_root / "short.mp4").status_code == 503
    assert not Upload.objects.exists()


def test_a_failed_record_keeps_no_file(
    user: User, other_user: User, upload_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The row cannot go in (a real unique violation: the name is taken in the table): the
    saved file is removed again."""
    monkeypatch.setattr("videos.services.secrets.token_hex", lambda n: "ab" * n)
    taken = f"uploads/{'ab' * 16}.mp4"
    Upload.objects.create(owner=other_user, source=taken, size=1)
    file = SimpleUploadedFile("clip.mp4", (upload_root / "short.mp4").read_bytes())
    with pytest.raises(IntegrityError):
        video_store(file=file, user=user)
    assert stored_files(upload_root / "uploads") == []
    assert list(Upload.objects.values_list("source", flat=True)) == [taken]


# --- quota --------------------------------------------------------------------------------------


def test_an_upload_over_the_quota_is_413_and_stores_nothing(
    api: APIClient, other_api: APIClient, upload_root: Path, settings: Settings
) -> None:
    size = (upload_root / "short.mp4").stat().st_size
    settings.MISIS_QUOTA_UPLOAD_BYTES = 2 * size - 1
    first = uploaded(api, upload_root)
    second = upload(api, upload_root / "short.mp4")
    assert second.status_code == 413, second.content
    assert second.json() == {"file": [f"upload quota of {2 * size - 1} bytes reached: {size} used"]}
    assert len(stored_files(upload_root / "uploads")) == 1
    assert list(Upload.objects.values_list("source", flat=True)) == [first]
    # The quota is each user's own.
    assert upload(other_api, upload_root / "short.mp4").status_code == 201
    # 0: no limit.
    settings.MISIS_QUOTA_UPLOAD_BYTES = 0
    assert upload(api, upload_root / "short.mp4").status_code == 201


def test_an_upload_over_the_quota_is_refused_before_the_body_is_read(
    api: APIClient, upload_root: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.MISIS_QUOTA_UPLOAD_BYTES = 1000

    def parse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the body was parsed")

    monkeypatch.setattr(MultiPartParser, "parse", parse)
    response = upload(api, upload_root / "short.mp4")
    assert response.status_code == 413, response.content
    assert response.json() == {"file": ["upload quota of 1000 bytes reached: 0 used"]}
    assert not (upload_root / "uploads").exists()


def test_an_s3_upload_over_the_quota_stores_nothing(
    api: APIClient, video_root: Path, s3_settings: S3Server, settings: Settings
) -> None:
    before = s3_settings.keys("uploads/")
    settings.MISIS_QUOTA_UPLOAD_BYTES = (video_root / "short.mp4").stat().st_size - 1
    assert upload(api, video_root / "short.mp4").status_code == 413
    assert s3_settings.keys("uploads/") == before
    assert not Upload.objects.exists()


def waiting_on_locks() -> int:
    with connection.cursor() as cursor:
        # Inside a transaction, pg_stat_activity is read once and then repeated: read it anew.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return int(cursor.fetchone()[0])


@pytest.mark.django_db(transaction=True)
def test_concurrent_uploads_do_not_pass_the_quota_together(
    upload_root: Path, settings: Settings
) -> None:
    """Uploads of one user at the same moment, room for one: exactly one is stored.

    The race is made certain: the table of uploads takes no row until every upload is
    waiting (a SHARE lock lets them read it, not write it). Uploads that each checked the quota
    before any recorded would then all go in.
    """
    user = get_user_model().objects.create_user(username="racer")
    content = (upload_root / "short.mp4").read_bytes()
    settings.MISIS_QUOTA_UPLOAD_BYTES = len(content) + len(content) // 2
    count = 4
    outcomes: list[str] = []

    def one() -> None:
        try:
            video_store(file=SimpleUploadedFile("clip.mp4", content), user=user)
            outcomes.append("stored")
        except VideoTooLarge:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=one) for _ in range(count)]
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {Upload._meta.db_table} IN SHARE MODE")
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while waiting_on_locks() < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert waiting_on_locks() == count
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["refused"] * (count - 1) + ["stored"]
    assert Upload.objects.filter(owner=user).count() == 1
    assert len(os.listdir(upload_root / "uploads")) == 1
