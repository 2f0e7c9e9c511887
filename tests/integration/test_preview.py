"""The live preview end to end: real workers draw boxes, a real browser shows the page.

A looping scenario runs on loop.mp4 under the mock detector; its newest annotated frame is read
back from ``frame.jpg`` over HTTP (pytest-django's ``live_server``), and Debian's headless
Chromium loads the signed ``preview_url`` the API gives (``/scenario/<id>/view/?sig=``) and dumps
the DOM after the page's own script has polled the state and loaded the frame.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from testbed.stack import Stack, wait_for
from tests.conftest import client_for
from tests.helpers import CHROMIUM, require_chromium

pytestmark = pytest.mark.integration

BOX_BGR = np.array([0, 200, 0])  # scenarios.preview's colour for class 0 ("person")
# The mock detector's "person" box on a 320x240 frame: the centre quarter.
X1, Y1, X2, Y2 = 80, 60, 240, 180


def get_json(client: APIClient, sid: str) -> dict[str, Any]:
    resp = client.get(f"/scenario/{sid}/")
    assert resp.status_code == 200
    return cast("dict[str, Any]", resp.json())


def fetch_frame(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert resp.headers["Content-Type"] == "image/jpeg"
            assert resp.headers["Cache-Control"] == "no-store"
            return cast(bytes, resp.read())  # urlopen's response is untyped (Any)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def edge_points() -> list[tuple[int, int, bool]]:
    """(x, y, horizontal edge?) along the box, clear of the caption and of the car box."""
    points = [(x, Y1, True) for x in range(X1 + 20, X2 - 9, 10)]
    points += [(x, Y2, True) for x in range(X1 + 10, X2 - 9, 10)]
    points += [(X2, y, False) for y in range(Y1 + 10, Y2 - 9, 10)]
    points += [(X1, y, False) for y in range(Y1 + 10, 111, 10)]  # the car box starts at y=120
    return points


def box_colour_error(image: np.ndarray, x: int, y: int, horizontal: bool) -> int:
    """How far the pixel nearest the box colour, within 1 px across the edge, is from it."""
    near = (
        [image[y + d, x] for d in (-1, 0, 1)]
        if horizontal
        else [image[y, x + d] for d in (-1, 0, 1)]
    )
    return min(int(np.abs(p.astype(int) - BOX_BGR).max()) for p in near)


def dump_dom(url: str, tmp: Path, attempt: int) -> tuple[str, str]:
    profile = tmp / f"chromium-profile-{attempt}"
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        # Virtual time runs the page's timers 4 s ahead, pausing while requests are in flight.
        "--virtual-time-budget=4000",
        "--dump-dom",
        url,
    ]
    env = {**os.environ, "HOME": str(tmp)}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=90, env=env, check=False)
    return done.stdout, done.stderr


def body_attrs(dom: str) -> dict[str, str]:
    found = re.search(r"<body([^>]*)>", dom)
    return dict(re.findall(r'([\w-]+)="([^"]*)"', found.group(1))) if found else {}


def dom_ready(dom: str) -> bool:
    attrs = body_attrs(dom)
    return (
        int(attrs.get("data-updated", "0") or 0) > 0
        and attrs.get("data-frame-loaded") == "320"
        and re.search(r'<span id="status" data-status="active">active</span>', dom) is not None
    )


def test_preview_shows_the_annotated_frame_in_a_browser(
    live: Stack, live_server: Any, django_user_model: type[User], tmp_path: Path
) -> None:
    require_chromium("the preview's browser test")
    user = django_user_model.objects.create_user(username="viewer")
    client = client_for(user)
    resp = client.post(
        "/scenario/", {"source": "loop.mp4", "params": {"loop": True}}, format="json"
    )
    assert resp.status_code == 201, resp.content
    sid = resp.json()["id"]
    base = live_server.url
    try:
        started = time.monotonic()
        wait_for(lambda: get_json(client, sid)["status"] == "active", 20, what="active")
        link = get_json(client, sid)["preview_url"]
        sig = link.split("?sig=", 1)[1]
        frame_url = f"{base}/scenario/{sid}/frame.jpg?sig={sig}"
        data: bytes = wait_for(lambda: fetch_frame(frame_url), 20, 0.2, what="a preview frame")
        first_frame_s = time.monotonic() - started

        # A real JPEG of the source's size, with the mock detector's box drawn on it.
        assert data[:2] == b"\xff\xd8"
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape == (240, 320, 3)
        errors = [box_colour_error(image, x, y, h) for x, y, h in edge_points()]
        close = sum(e <= 70 for e in errors)
        assert close >= 0.9 * len(errors), f"box edge is not (0,200,0): errors {errors}"
        # ...and the inside of the box is not painted over.
        inside = [box_colour_error(image, x, 100, True) for x in range(120, 201, 20)]
        assert min(inside) > 70, f"the box's inside looks like its edge: {inside}"

        # The page in a real browser: its script polls the API and refreshes the frame.
        page_url = f"{base}{link}"
        dom, stderr = "", ""
        browser_started = time.monotonic()
        for attempt in range(4):
            dom, stderr = dump_dom(page_url, tmp_path, attempt)
            if dom_ready(dom):
                break
            time.sleep(1)
        browser_s = time.monotonic() - browser_started
        (tmp_path / "preview-dom.html").write_text(dom)
        attrs = body_attrs(dom)
        assert dom_ready(dom), (
            f"page not updated after {attempt + 1} tries; body {attrs};"
            f" DOM head {dom[:1500]!r}; chromium stderr tail {stderr[-1500:]!r}"
        )
        assert attrs["data-scenario-id"] == sid
        processed = re.search(r'<td id="frames-processed">(\d+)</td>', dom)
        assert processed and int(processed.group(1)) > 0, "frames processed not shown"
        assert re.search(r'<td id="restarts">0</td>', dom)
        print(
            f"first frame {first_frame_s:.2f}s after create; browser {browser_s:.2f}s,"
            f" {attempt + 1} run(s); page polled {attrs['data-updated']}x,"
            f" frames loaded {attrs.get('data-frames-loaded')}; DOM in {tmp_path}"
        )
    finally:
        client.post(f"/scenario/{sid}/", {"status": "init_shutdown"}, format="json")
        wait_for(lambda: get_json(client, sid)["status"] == "inactive", 15, what="inactive")
