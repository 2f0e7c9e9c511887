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


def probe_hosts(refused: tuple[str, ...], allowed: tuple[str, ...], **env: str) -> None:
    """check_host under production settings in a fresh process: ``refused`` must be refused."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "MISIS_SOURCE"))}
    full.update(GOOD, DJANGO_SETTINGS_MODULE="misis.settings.production", **env)
    probe = (
        "import django, sys; django.setup()\n"
        "from sources.hosts import HostRefused, check_host\n"
        "refused, allowed = sys.argv[1].split(), sys.argv[2].split()\n"
        "for host in refused:\n"
        "    try:\n"
        "        check_host(host)\n"
        "    except HostRefused:\n"
        "        continue\n"
        "    raise SystemExit(f'{host} allowed')\n"
        "for host in allowed:\n"
        "    check_host(host)\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, " ".join(refused), " ".join(allowed)],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


BUILTIN = (
    "127.0.0.1",
    "::1",
    "[::ffff:127.0.0.1]",
    "169.254.169.254",
    "[::ffff:169.254.169.254]",
    "fe80::1",
    "0.0.0.0",
    "[::]",
    "localhost",
    "metadata.google.internal",
    "2130706433",
)


def test_production_denies_loopback_link_local_and_metadata_sources_by_default() -> None:
    probe_hosts(BUILTIN, ("10.0.0.7", "2001:db8::7"))


def test_an_operator_deny_list_adds_to_the_builtin_denials() -> None:
    # MISIS_SOURCE_DENY once replaced the defaults: setting it re-opened the metadata service.
    probe_hosts((*BUILTIN, "10.0.0.7"), ("192.168.1.7",), MISIS_SOURCE_DENY="10.0.0.0/8")


def test_an_operator_allow_list_cannot_reopen_the_builtin_denials() -> None:
    allow = "127.0.0.0/8,::1,169.254.0.0/16,fe80::/10,0.0.0.0/8,::/128,localhost,10.0.0.0/8"
    probe_hosts(BUILTIN, ("10.0.0.7",), MISIS_SOURCE_ALLOW=allow)
