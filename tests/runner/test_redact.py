from __future__ import annotations

import pytest

from sources.redact import redact


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        ("onvif://admin:s3cr3t@cam.local", "onvif://admin:***@cam.local"),
        ("rtsp://u:p@10.0.0.5:554/stream?x=1", "rtsp://u:***@10.0.0.5:554/stream?x=1"),
        ("rtsp://cam/stream", "rtsp://cam/stream"),
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


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        # Camera firmwares' own parameter names.
        ("http://cam/snap.cgi?user=a&psw=hunter2", "http://cam/snap.cgi?user=a&psw=***"),
        (
            "http://cam/v.cgi?loginuse=a&loginpas=hunter2",
            "http://cam/v.cgi?loginuse=a&loginpas=***",
        ),
        ("http://cam/v.cgi?usr=a&pwd=hunter2&res=1", "http://cam/v.cgi?usr=a&pwd=***&res=1"),
        ("http://cam/v.cgi?PassWord=hunter2", "http://cam/v.cgi?PassWord=***"),
        # Semicolon-separated parameters, in the query and in the path.
        ("http://cam/v.cgi?user=a;pwd=hunter2;x=1", "http://cam/v.cgi?user=a;pwd=***;x=1"),
        ("rtsp://cam/live;user=a;pwd=hunter2/ch1", "rtsp://cam/live;user=a;pwd=***/ch1"),
        # Signatures and API keys.
        ("https://h/v.m3u8?sig=abc123&e=1", "https://h/v.m3u8?sig=***&e=1"),
        ("https://s3/b/k?Signature=abc%2Bdef&Expires=1", "https://s3/b/k?Signature=***&Expires=1"),
        ("https://h/v?X-Amz-Security-Token=T0K", "https://h/v?X-Amz-Security-Token=***"),
        ("https://h/v?key=hunter2&apikey=hunter3", "https://h/v?key=***&apikey=***"),
        ("https://h/v?api_key=hunter2", "https://h/v?api_key=***"),
        ("https://h/v?access_token=hunter2", "https://h/v?access_token=***"),
        ("https://h/v?auth=hunter2&authkey=hunter3", "https://h/v?auth=***&authkey=***"),
        ("https://h/v?client_secret=hunter2", "https://h/v?client_secret=***"),
        ("https://h/v?p%61ss=hunter2", "https://h/v?p%61ss=***"),
        # In the fragment (OAuth implicit flow).
        ("https://h/v#access_token=hunter2&x=1", "https://h/v#access_token=***&x=1"),
        # A token as the user, with no password.
        ("https://hunter2token@h/live.m3u8", "https://***@h/live.m3u8"),
        ("rtsp://user@cam/stream", "rtsp://***@cam/stream"),
        # A long user name next to a dummy password is a token too (TOKEN:x-oauth-basic).
        (
            "https://ghp_0123456789abcdefghij0123456789abcdef:x-oauth-basic@h/v",
            "https://***:***@h/v",
        ),
        # Userinfo anywhere: in the path, in a URL nested in a parameter, percent-encoded.
        ("http://proxy/fetch/admin:hunter2@cam/v.mjpg", "http://proxy/fetch/admin:***@cam/v.mjpg"),
        (
            "http://proxy/relay?url=rtsp://admin:hunter2@cam/live",
            "http://proxy/relay?url=rtsp://admin:***@cam/live",
        ),
        (
            "http://proxy/relay?url=rtsp%3A%2F%2Fadmin%3Ahunter2%40cam%2Flive",
            "http://proxy/relay?url=rtsp://admin:***@cam/live",
        ),
        ("http://proxy/relay?to=//hunter2token@cam/live", "http://proxy/relay?to=//***@cam/live"),
    ],
)
def test_secrets_in_every_place_a_url_carries_them(source: str, shown: str) -> None:
    assert redact(source) == shown
    assert "hunter" not in redact(source)


@pytest.mark.parametrize(
    "source",
    [
        "http://cam/v.cgi?resolution=640x480&fps=10",
        "rtsp://10.0.0.5:554/Streaming/Channels/101",
        "https://h/live/index.m3u8?e=1700000000",
        "s3://bucket/clips/a.mp4",
        "/data/videos/a b.mp4",
    ],
)
def test_harmless_sources_are_shown_as_given(source: str) -> None:
    assert redact(source) == source
