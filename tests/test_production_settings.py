"""Production settings refuse to start with an unsafe configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GOOD = {
    "DJANGO_SECRET_KEY": "k" * 20 + "-a-long-random-production-secret",
    "DJANGO_ALLOWED_HOSTS": "video.example.com",
    "DJANGO_DEBUG": "0",
}


def check(**env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    full.update(env, DJANGO_SETTINGS_MODULE="misis.settings.production")
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "ERROR"],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_good_production_settings_start() -> None:
    result = check(**GOOD)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"DJANGO_DEBUG": "1"}, "DJANGO_DEBUG must be off"),
        ({"DJANGO_SECRET_KEY": "short"}, "DJANGO_SECRET_KEY"),
        ({"DJANGO_SECRET_KEY": "local-insecure-key-not-for-production-xxxxxxxx"}, "SECRET_KEY"),
        ({"DJANGO_ALLOWED_HOSTS": ""}, "DJANGO_ALLOWED_HOSTS"),
        ({"DJANGO_ALLOWED_HOSTS": "*"}, "DJANGO_ALLOWED_HOSTS"),
    ],
)
def test_unsafe_production_settings_refuse_to_start(override: dict[str, str], message: str) -> None:
    result = check(**{**GOOD, **override})
    assert result.returncode != 0
    assert message in result.stderr


def test_secret_key_is_required() -> None:
    env = {k: v for k, v in GOOD.items() if k != "DJANGO_SECRET_KEY"}
    result = check(**env)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_denies_loopback_link_local_and_metadata_sources_by_default() -> None:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "MISIS_SOURCE"))}
    full.update(GOOD, DJANGO_SETTINGS_MODULE="misis.settings.production")
    probe = (
        "import django; django.setup()\n"
        "from runner.hosts import HostRefused, check_host\n"
        "for host in ('127.0.0.1', '::1', '169.254.169.254', 'fe80::1', 'localhost'):\n"
        "    try:\n"
        "        check_host(host)\n"
        "    except HostRefused:\n"
        "        continue\n"
        "    raise SystemExit(f'{host} allowed')\n"
        "check_host('10.0.0.7')\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
