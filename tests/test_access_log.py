"""The API's access log keeps query strings (preview links, secrets in URLs) out.

A real gunicorn, started with the config run.sh and docker/api.Dockerfile use, serves a few
requests; its access log is read back.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.gunicorn_server import ROOT, gunicorn


@pytest.fixture(autouse=True)
def _video_root_setting() -> None:
    return None


def test_run_sh_and_the_api_image_use_the_config() -> None:
    run_sh = (ROOT / "run.sh").read_text()
    dockerfile = (ROOT / "docker" / "api.Dockerfile").read_text()
    assert re.search(r"gunicorn misis\.wsgi -c python:misis\.gunicorn_conf ", run_sh)
    assert '"--config", "python:misis.gunicorn_conf"' in dockerfile
    for text in (run_sh, dockerfile):
        # No flag on the command line that would put the request line back.
        assert "access-logformat" not in text and "access_log_format" not in text
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "access-logformat" not in compose and "gunicorn misis" not in compose


def test_the_access_log_has_paths_without_query_strings(tmp_path: Path) -> None:
    from misis import gunicorn_conf

    assert "%(r)s" not in gunicorn_conf.access_log_format
    assert "%(q)s" not in gunicorn_conf.access_log_format
    assert "%(f)s" not in gunicorn_conf.access_log_format

    log = tmp_path / "gunicorn.log"
    with gunicorn(log) as base:
        request = urllib.request.Request(
            f"{base}/scenario/x/view/?sig=SECRET-SIG&token=SECRET-TOKEN",
            headers={"Referer": f"{base}/elsewhere/?token=SECRET-REFERER"},
        )
        try:
            urllib.request.urlopen(request, timeout=10).close()
        except urllib.error.HTTPError as exc:
            assert exc.code == 403  # a bad link
    text = log.read_text()
    assert '"GET /scenario/x/view/ HTTP/1.1" 403' in text, text
    assert "SECRET" not in text, text
    assert "ready=1" not in text
