from __future__ import annotations

import pytest

from runner.sources import redact


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        ("onvif://admin:s3cr3t@cam.local", "onvif://admin:***@cam.local"),
        ("rtsp://u:p@10.0.0.5:554/stream?x=1", "rtsp://u:***@10.0.0.5:554/stream?x=1"),
        ("rtsp://cam/stream", "rtsp://cam/stream"),
        ("rtsp://user@cam/stream", "rtsp://user@cam/stream"),
        ("clips/a.mp4", "clips/a.mp4"),
    ],
)
def test_passwords_never_shown(source: str, shown: str) -> None:
    assert redact(source) == shown
