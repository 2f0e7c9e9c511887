"""Live sources against real servers: GStreamer's RTSP server and an MJPEG/HTTP server.

The servers are killed, frozen and restarted under a running scenario; the stack runs with a
2 s read timeout and a 3 s open timeout (``stream_stack``).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from scenarios.models import Prediction
from testbed.processes import free_port
from testbed.stack import Stack, wait_for
from tests.conftest import client_for
from tests.integration.api import create, get, stop, wait_status

pytestmark = pytest.mark.integration

READ_TIMEOUT = 2.0  # MISIS_STREAM_READ_TIMEOUT of stream_stack


@pytest.fixture
def client(stream_stack: Stack, transactional_db: None, django_user_model: type[User]) -> APIClient:
    stream_stack.ensure_running()
    return client_for(django_user_model.objects.create_user(username="cam-operator"))


def last_frame(sid: str) -> int:
    last = Prediction.objects.filter(scenario_id=sid).order_by("-frame_index").first()
    return -1 if last is None else last.frame_index


def predictions_grow(sid: str, timeout: float = 20) -> int:
    """Wait for a prediction newer than the newest one now; return its frame index."""
    before = last_frame(sid)
    wait_for(lambda: last_frame(sid) > before, timeout, what=f"predictions after {before}")
    return last_frame(sid)


def publishing(client: APIClient, source: str, **params: object) -> tuple[str, int]:
    """A scenario that is active and has published; its id and its newest frame index."""
    sid = create(client, source, **params)
    wait_status(client, sid, "active")
    return sid, predictions_grow(sid)


def test_rtsp_pattern_and_looped_file_reach_active_and_publish(
    client: APIClient, rtsp_server: Any
) -> None:
    pattern = create(client, rtsp_server.url("test"), target_fps=5)
    looped = create(client, rtsp_server.url("file"))
    for sid in (pattern, looped):
        active = wait_status(client, sid, "active")
        assert active["stream"]["state"] == "connected"
        predictions_grow(sid)
        rows = client.get(f"/prediction/{sid}/").json()["results"]
        assert rows and rows[0]["width"] > 0 and rows[0]["boxes"]
        indices = [r["frame_index"] for r in rows]
        assert indices == sorted(set(indices))
    for sid in (pattern, looped):
        done = stop(client, sid)
        assert done["stop_reason"] == "requested" and done["stream"] is None


def test_server_restart_within_reconnect_timeout_resumes_the_same_scenario(
    client: APIClient, rtsp_server: Any
) -> None:
    sid, before = publishing(client, rtsp_server.url("test"), reconnect_timeout=30)
    rtsp_server.kill()
    down = wait_for(
        lambda: (d := get(client, sid))["stream"]["state"] == "reconnecting" and d,
        READ_TIMEOUT + 8,
        what="reconnecting",
    )
    assert down["status"] == "active"  # a camera outage is not a scenario failure
    assert down["stream"]["error"]
    time.sleep(2)
    assert get(client, sid)["status"] == "active"
    rtsp_server.start()
    after = predictions_grow(sid, timeout=20)
    assert after > before
    back = get(client, sid)
    assert back["status"] == "active" and back["restarts"] == 0
    assert back["stream"]["state"] == "connected" and back["stream"]["reconnects"] >= 1
    frames = list(Prediction.objects.filter(scenario_id=sid).values_list("frame_index", flat=True))
    assert len(frames) == len(set(frames))
    stop(client, sid)


def test_frozen_server_is_noticed_within_the_read_timeout(
    client: APIClient, rtsp_server: Any
) -> None:
    sid, _ = publishing(client, rtsp_server.url("test"), reconnect_timeout=60)
    rtsp_server.freeze()
    frozen_at = time.monotonic()
    try:
        wait_for(
            lambda: get(client, sid)["stream"]["state"] == "reconnecting",
            READ_TIMEOUT + 6,
            what="frozen stream noticed",
        )
        noticed = time.monotonic() - frozen_at
        # The read timeout, plus up to a heartbeat for the runner to say so.
        assert noticed < READ_TIMEOUT + 3, noticed
        assert get(client, sid)["status"] == "active"
    finally:
        rtsp_server.thaw()
    predictions_grow(sid, timeout=25)
    assert get(client, sid)["stream"]["state"] == "connected"
    stop(client, sid)


def test_server_that_never_comes_back_ends_the_scenario_with_an_error(
    client: APIClient, rtsp_server: Any
) -> None:
    sid, _ = publishing(client, rtsp_server.url("test"), reconnect_timeout=5)
    rtsp_server.kill()
    try:
        done = wait_status(client, sid, "inactive", timeout=5 + READ_TIMEOUT + 15)
    finally:
        rtsp_server.start()
    assert done["stop_reason"] == "error"
    assert "reconnect_timeout" in done["error"] and "5 s" in done["error"]
    assert done["restarts"] == 0  # ended by the runner, not retried by the watchdog


def test_stream_that_never_opens_ends_inactive_with_a_readable_error(client: APIClient) -> None:
    port = free_port()
    sid = create(client, f"rtsp://admin:hunter2@127.0.0.1:{port}/stream")
    done = wait_status(client, sid, "inactive", timeout=30)
    assert done["stop_reason"] == "error"
    assert f"cannot connect to 127.0.0.1:{port}" in done["error"]
    assert "hunter2" not in str(done)
    assert done["source"] == f"rtsp://admin:***@127.0.0.1:{port}/stream"


def test_camera_credentials_work_and_never_reach_answers_or_logs(
    client: APIClient, stream_stack: Stack, make_rtsp_server: Any
) -> None:
    camera = make_rtsp_server(user="viewer", password="Tr0ub4dor&3")
    good = create(client, camera.url("test"), target_fps=5)
    wrong = create(client, camera.url("test").replace("Tr0ub4dor&3", "guess-n0t"))
    active = wait_status(client, good, "active")
    assert active["source"] == camera.url("test").replace("Tr0ub4dor&3", "***")
    predictions_grow(good)
    refused = wait_status(client, wrong, "inactive", timeout=40)
    assert refused["stop_reason"] == "error"
    assert "credentials" in refused["error"] and "guess-n0t" not in refused["error"]
    stop(client, good)
    for name in stream_stack.procs:
        log = stream_stack.log(name)
        assert b"Tr0ub4dor" not in log and b"guess-n0t" not in log and b"hunter2" not in log, name


def test_wrong_rtsp_path_ends_with_an_error(client: APIClient, rtsp_server: Any) -> None:
    sid = create(client, rtsp_server.url("no-such-mount"))
    done = wait_status(client, sid, "inactive", timeout=30)
    assert done["stop_reason"] == "error" and "cannot open source" in done["error"]


def test_mjpeg_over_http_is_live(client: APIClient, http_stream_server: Any) -> None:
    sid = create(client, http_stream_server.url("mjpeg"), target_fps=5)
    active = wait_status(client, sid, "active")
    assert active["stream"]["state"] == "connected" and active["progress"] is None
    predictions_grow(sid)
    stop(client, sid)


def test_progressive_http_file_is_read_to_its_end(
    client: APIClient, http_stream_server: Any
) -> None:
    sid = create(client, http_stream_server.url("short.mp4"))
    done = wait_status(client, sid, "inactive", timeout=30)
    assert done["stop_reason"] == "end_of_stream" and done["frames_processed"] == 40
    assert done["stream"] is None


def test_onvif_camera_runs_on_the_stream_it_names_and_is_asked_again_on_reconnect(
    client: APIClient, rtsp_server: Any, onvif_device: Any
) -> None:
    onvif_device.set_stream_uri("main", rtsp_server.url("test", auth=False))
    sid = create(client, onvif_device.source, target_fps=5, reconnect_timeout=30)
    active = wait_status(client, sid, "active")
    assert active["stream"]["state"] == "connected"
    assert onvif_device.password not in str(active) and "p%40ss" not in str(active)
    predictions_grow(sid)
    assert onvif_device.calls.count("GetStreamUri") == 1
    # The camera now names another stream; a reconnect must ask it again, not reuse the old URI.
    onvif_device.set_stream_uri("main", rtsp_server.url("file", auth=False))
    rtsp_server.restart()
    wait_for(lambda: onvif_device.calls.count("GetStreamUri") >= 2, 20, what="re-resolution")
    predictions_grow(sid)
    back = get(client, sid)
    assert back["status"] == "active" and back["stream"]["reconnects"] >= 1
    stop(client, sid)


def test_onvif_wrong_password_ends_with_a_readable_error(
    client: APIClient, make_onvif_device: Any
) -> None:
    device = make_onvif_device(user="admin", password="right")
    source = device.source.replace(":right@", ":wrong@")
    sid = create(client, source)
    done = wait_status(client, sid, "inactive", timeout=30)
    assert done["stop_reason"] == "error"
    assert "credentials" in done["error"] or "refused" in done["error"], done["error"]
    assert "wrong" not in done["error"]


def test_hls_live_is_live_and_hls_vod_is_a_file(client: APIClient, http_stream_server: Any) -> None:
    live = create(client, http_stream_server.url("hls/live/short.m3u8"), target_fps=5)
    vod = create(client, http_stream_server.url("hls/vod/short.m3u8"))
    assert wait_status(client, live, "active")["stream"]["state"] == "connected"
    predictions_grow(live)
    done = wait_status(client, vod, "inactive")
    assert done["stop_reason"] == "end_of_stream" and done["frames_processed"] == 40
    stop(client, live)


def test_rtsps_camera_with_a_self_signed_certificate_and_credentials(
    client: APIClient, make_rtsp_server: Any
) -> None:
    camera = make_rtsp_server(user="viewer", password="s3cret-tls", tls=True)
    source = camera.url("test")
    assert source.startswith("rtsps://viewer:s3cret-tls@127.0.0.1:")
    sid = create(client, source, target_fps=5)
    active = wait_status(client, sid, "active")
    assert active["stream"]["state"] == "connected"
    assert active["source"] == source.replace("s3cret-tls", "***")
    assert active["source"].startswith("rtsps://viewer:***@127.0.0.1:")
    predictions_grow(sid)
    done = stop(client, sid)
    assert done["stop_reason"] == "requested" and done["stream"] is None
    assert "s3cret-tls" not in str(done)
