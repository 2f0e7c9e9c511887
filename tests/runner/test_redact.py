from __future__ import annotations

import pytest

from runner.redact import redact


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        ("onvif://admin:s3cr3t@cam.local", "onvif://admin:***@cam.local"),
        ("rtsp://u:p@10.0.0.5:554/stream?x=1", "rtsp://u:***@10.0.0.5:554/stream?x=1"),
        ("rtsp://cam/stream", "rtsp://cam/stream"),
        ("rtsp://user@cam/stream", "rtsp://user@cam/stream"),
        ("rtsps://u:p%40ss@cam:322/s", "rtsps://u:***@cam:322/s"),
        ("http://cam/video.mjpg?user=a&password=b", "http://cam/video.mjpg?user=a&password=***"),
        ("https://h/v.m3u8?token=abc&q=1", "https://h/v.m3u8?token=***&q=1"),
        (
            "https://s3/b/k.mp4?X-Amz-Credential=AK%2F1&X-Amz-Signature=ff",
            "https://s3/b/k.mp4?X-Amz-Credential=***&X-Amz-Signature=***",
        ),
        ("clips/a.mp4", "clips/a.mp4"),
        ("rtsp://u:p@[::1", "[::1"),
    ],
)
def test_secrets_never_shown(source: str, shown: str) -> None:
    assert redact(source) == shown
