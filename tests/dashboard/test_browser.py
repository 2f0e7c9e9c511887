"""The dashboard end to end in headless Chromium, driven by Playwright, on the real stack.

Real workers (two runners, the mock detector) run the scenario; pytest-django's live server
serves the dashboard. The browser logs in, creates a scenario on a sample video through the
form, waits for the card's annotated frame (decoded from the browser's own copy of the image,
pixels checked for the detector's box), its fps and frame count and zone counts, stops it and
sees it inactive, deletes it and sees it gone, then logs out. A ``<img onerror>`` name must
show as text and run nothing.

Playwright's sync API keeps an event loop in this thread: the ORM is used only before the
browser starts and after it has closed (Django refuses ORM calls beside a running loop).
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect, sync_playwright

from scenarios.models import Scenario
from testbed.stack import Stack
from tests.helpers import CHROMIUM, require_chromium
from tests.integration.test_preview import box_colour_error, edge_points

pytestmark = pytest.mark.integration

HOSTILE_NAME = '<img src=x onerror="document.body.dataset.pwned=1">lobby'
# The mock detector's person box has its anchor (bottom middle) at (0.5, 0.75): inside.
PARAMS = {
    "zones": [{"name": "door", "polygon": [[0.2, 0.5], [0.8, 0.5], [0.8, 0.95], [0.2, 0.95]]}],
    "lines": [{"name": "entry", "points": [[0.0, 0.6], [1.0, 0.6]]}],
}
WAIT_MS = 30_000

# The card's frame as the browser holds it: drawn onto a canvas, read back as PNG.
FRAME_PNG_JS = """card => {
  const img = card.querySelector('.frame-img');
  if (!img.complete || img.naturalWidth === 0) return null;
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  canvas.getContext('2d').drawImage(img, 0, 0);
  return canvas.toDataURL('image/png');
}"""


def card_value(page: Page, sid: str, cls: str) -> str:
    return page.locator(f'article.card[data-id="{sid}"] .{cls}').inner_text()


def test_operator_logs_in_creates_watches_and_stops_a_scenario(
    live: Stack, live_server: Any, django_user_model: type[User], tmp_path: Path
) -> None:
    require_chromium("the dashboard's browser test")
    django_user_model.objects.create_user(username="operator", password="pw-operator-1")
    base = live_server.url
    seen: dict[str, Any] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(WAIT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            # Logged out: the dashboard sends the browser to the login form.
            page.goto(f"{base}/")
            assert re.search(r"/login/\?next=/$", page.url), page.url
            page.fill("#id_username", "operator")
            page.fill("#id_password", "pw-operator-1")
            page.click("#login")
            page.wait_for_url(f"{base}/")

            # A bad form first: the API's message, nothing created.
            page.fill("#id_source", "ftp://example.com/x.mp4")
            page.click("#create")
            expect(page.locator('.field-error[data-field="source"]')).to_contain_text("ftp")
            assert page.locator("article.card").count() == 0

            page.fill("#id_source", "loop.mp4")
            page.fill("#id_name", HOSTILE_NAME)
            page.fill("#id_target_fps", "10")
            page.check("#id_loop")
            page.fill("#id_params", json.dumps(PARAMS))
            page.click("#create")
            expect(page.locator(".messages .success")).to_contain_text("created")
            card = page.locator("article.card")
            expect(card).to_have_count(1)
            sid = card.get_attribute("data-id")
            assert sid
            seen["sid"] = sid

            # The card fills in by itself: active, frames, fps, the zone's counts, the frame.
            expect(card).to_have_attribute("data-status", "active")
            expect(card).to_have_attribute("data-frame-width", "320")
            page.wait_for_function(
                "sid => Number(document.querySelector(`article.card[data-id='${sid}']`)"
                ".dataset.framesLoaded) >= 2",
                arg=sid,
            )
            expect(card.locator(".counts")).to_contain_text(
                re.compile(r"zone door: .*entered [1-9]")
            )
            expect(card.locator(".fps")).to_have_text(re.compile(r"^[0-9.]+$"))
            page.wait_for_function(
                "sid => parseFloat(document.querySelector(`article.card[data-id='${sid}'] .fps`)"
                ".textContent) > 0",
                arg=sid,
            )
            assert int(card_value(page, sid, "frames")) > 0
            png = card.evaluate(FRAME_PNG_JS)
            assert png and png.startswith("data:image/png;base64,")
            image = cv2.imdecode(
                np.frombuffer(base64.b64decode(png.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR
            )
            assert image is not None and image.shape == (240, 320, 3)
            box = [box_colour_error(image, x, y, h) for x, y, h in edge_points()]
            assert sum(e <= 70 for e in box) >= 0.9 * len(box), f"no detector box: {box}"
            shown = card.locator(".frame-img").bounding_box()
            assert shown and shown["width"] > 0 and shown["height"] > 0

            # The hostile name is text; nothing it carries ran.
            assert card.locator(".name").inner_text() == HOSTILE_NAME
            assert card.locator(".name img").count() == 0
            assert page.evaluate("document.body.dataset.pwned") is None

            # Stop: the card turns inactive by itself and offers a start.
            card.locator('form[data-action="stop"] button').click()
            expect(card).to_have_attribute("data-status", "inactive")
            expect(card.locator('form[data-action="start"]')).to_be_visible()
            expect(card.locator('form[data-action="stop"]')).to_be_hidden()
            assert card_value(page, sid, "stop-reason") == "requested"

            # What was stored, as the dashboard's JSON has it.
            state = page.evaluate("() => fetch('/dashboard/state/').then(r => r.json())")
            (stored,) = state["scenarios"]
            assert stored["name"] == HOSTILE_NAME
            assert stored["params"] == {**PARAMS, "target_fps": 10, "loop": True}
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

            # Delete asks first: dismissed, nothing happens; accepted, the card is gone.
            asked: list[str] = []

            def answer(dialog: Any, accept: bool) -> None:
                asked.append(dialog.message)
                dialog.accept() if accept else dialog.dismiss()

            page.once("dialog", lambda d: answer(d, False))
            card.locator('form[data-action="delete"] button').click()
            page.wait_for_timeout(500)
            expect(card).to_have_count(1)
            page.once("dialog", lambda d: answer(d, True))
            card.locator('form[data-action="delete"] button').click()
            expect(page.locator(".messages .info")).to_contain_text(f"Scenario {sid} deleted.")
            expect(page.locator("article.card")).to_have_count(0)
            assert len(asked) == 2 and HOSTILE_NAME in asked[0]
            page.wait_for_timeout(1500)  # a poll or two later: still gone
            expect(page.locator("article.card")).to_have_count(0)

            page.click("#logout")
            page.wait_for_url(re.compile(r"/login/$"))
            page.goto(f"{base}/")
            assert "/login/" in page.url
            assert errors == [], errors
        finally:
            browser.close()
    assert not Scenario.objects.filter(pk=seen["sid"]).exists()
    assert Scenario.objects.count() == 0
    print(f"dashboard screenshot in {tmp_path}")
