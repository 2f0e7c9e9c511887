"""Deployment files: docker-compose.yml renders, and every docker/*.Dockerfile is sane.

No database, no Redis, no Docker engine: `docker-compose config` when the command exists (it
interpolates and validates the file), PyYAML on the raw file otherwise.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILES = sorted((ROOT / "docker").glob("*.Dockerfile"))
INFRA = {"postgres", "redis", "s3", "migrate"}
SERVICES = INFRA | {"api", "beat", "orchestrator", "runner", "inference"}
SECRET = "a-test-secret-key-that-is-long-enough-0123456789"


# This module needs neither Redis nor the video fixtures of conftest.py: disable its autouse ones.
@pytest.fixture(autouse=True)
def redis_clean() -> None:
    return None


@pytest.fixture(autouse=True)
def _video_root_setting() -> None:
    return None


def compose(
    tmp_path: Path, *args: str, secret: str | None = SECRET
) -> subprocess.CompletedProcess[str]:
    """Runs docker-compose on the file with an empty env file, so a local .env cannot interfere."""
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "COMPOSE_"))}
    if secret is not None:
        env["DJANGO_SECRET_KEY"] = secret
    return subprocess.run(
        ["docker-compose", "--env-file", str(env_file), "-f", str(COMPOSE_FILE), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The compose configuration: rendered by docker-compose when installed, else the raw file."""
    if shutil.which("docker-compose"):
        result = compose(tmp_path_factory.mktemp("compose"), "config")
        assert result.returncode == 0, result.stderr
        rendered = yaml.safe_load(result.stdout)
        assert SECRET in result.stdout  # the secret reached the services
        return rendered
    return yaml.safe_load(COMPOSE_FILE.read_text())


def test_compose_has_every_service(config: dict[str, Any]) -> None:
    missing = SERVICES - set(config["services"])
    assert not missing


def test_inference_reserves_a_gpu(config: dict[str, Any]) -> None:
    devices = config["services"]["inference"]["deploy"]["resources"]["reservations"]["devices"]
    gpus = [d for d in devices if d.get("driver") == "nvidia" and "gpu" in d["capabilities"]]
    assert gpus, devices
    assert gpus[0]["count"] in (1, "1", "all")


def test_runner_can_scale(config: dict[str, Any]) -> None:
    runner = config["services"]["runner"]
    # `--scale runner=N` needs generated container names and no fixed host port.
    assert "container_name" not in runner
    assert not runner.get("ports")
    assert "-Q runner" in str(runner["command"])


def test_app_services_wait_for_migrations(config: dict[str, Any]) -> None:
    for name in ("api", "beat", "orchestrator", "runner", "inference"):
        depends = config["services"][name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
    assert "migrate" in str(config["services"]["migrate"]["command"])


def test_api_publishes_its_port(config: dict[str, Any]) -> None:
    ports = config["services"]["api"]["ports"]
    targets = [p["target"] if isinstance(p, dict) else str(p).rsplit(":", 1)[-1] for p in ports]
    assert [int(t) for t in targets] == [8000]


def test_app_services_run_production_settings(config: dict[str, Any]) -> None:
    for name in ("migrate", "api", "beat", "orchestrator", "runner", "inference"):
        env = config["services"][name]["environment"]
        assert env["DJANGO_SETTINGS_MODULE"] == "misis.settings.production", name
        for key in ("DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS"):
            assert env.get(key), (name, key)


def test_secret_key_is_required(tmp_path: Path) -> None:
    if not shutil.which("docker-compose"):
        assert "${DJANGO_SECRET_KEY:?" in COMPOSE_FILE.read_text()
        return
    result = compose(tmp_path, "config", "-q", secret=None)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def final_stage(text: str) -> str:
    return re.split(r"(?mi)^FROM\s", text)[-1]


def test_dockerfiles_exist() -> None:
    names = {p.name for p in DOCKERFILES}
    assert {"api.Dockerfile", "worker.Dockerfile", "inference.Dockerfile"} <= names


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_is_multi_stage_non_root_with_healthcheck(path: Path) -> None:
    text = path.read_text()
    assert len(re.findall(r"(?mi)^FROM\s", text)) >= 2, "build venv in a builder stage"
    runtime = final_stage(text)
    users = re.findall(r"(?mi)^USER\s+(\S+)", runtime)
    assert users, "the runtime stage sets a USER"
    assert users[-1].split(":")[0] not in ("root", "0")
    health = re.findall(r"(?mi)^HEALTHCHECK\s+(.*)", runtime)
    assert health and "NONE" not in health[-1].upper()
    assert re.search(r"(?m)PYTHONUNBUFFERED=1", runtime)
    assert "DJANGO_SETTINGS_MODULE=misis.settings.production" in runtime
    assert re.search(r"(?m)^COPY --from=builder /opt/venv", runtime)
    assert "python:3.11" in text
