"""Deployment files: docker-compose.yml renders, and every docker/*.Dockerfile is sane.

No database, no Redis, no Docker engine: `docker-compose config` interpolates and validates
the file as a deployment would. It is required, not optional: a raw YAML read would pass a file
docker-compose refuses. `./run.sh --test` installs Debian's docker-compose when it is missing.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import subnet_of

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILES = sorted((ROOT / "docker").glob("*.Dockerfile"))
INFRA = {"postgres", "redis", "s3", "seaweedfs", "migrate"}
APPS = {"api", "beat", "orchestrator", "runner", "inference"}
SERVICES = INFRA | APPS
SECRET = "a-test-secret-key-that-is-long-enough-0123456789"
REDIS_PASSWORD = "redis-test-password-0123456789abcdef"
POSTGRES_PASSWORD = "postgres-test-password-0123456789abcdef"
PASSWORDS = {"REDIS_PASSWORD": REDIS_PASSWORD, "POSTGRES_PASSWORD": POSTGRES_PASSWORD}


# This module needs neither Redis nor the video fixtures of conftest.py.
pytestmark = pytest.mark.offline


def compose(
    tmp_path: Path,
    *args: str,
    secret: str | None = SECRET,
    without: tuple[str, ...] = (),
    extra: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Runs docker-compose on the file with an empty env file, so a local .env cannot interfere."""
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "COMPOSE_", "MISIS_", "REDIS_", "POSTGRES_"))
    }
    env.update({k: v for k, v in PASSWORDS.items() if k not in without}, **(extra or {}))
    if secret is not None:
        env["DJANGO_SECRET_KEY"] = secret
    # A failure, never a skip: without docker-compose nothing here is checked.
    assert shutil.which("docker-compose"), "docker-compose is missing (./run.sh --test installs it)"
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
    """The compose configuration, as docker-compose renders it."""
    result = compose(tmp_path_factory.mktemp("compose"), "config")
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)
    assert SECRET in result.stdout  # the secret reached the services
    return dict(rendered)


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
    result = compose(tmp_path, "config", "-q", secret=None)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


@pytest.mark.parametrize("name", sorted(PASSWORDS))
def test_redis_and_postgres_passwords_are_required(tmp_path: Path, name: str) -> None:
    result = compose(tmp_path, "config", "-q", without=(name,))
    assert result.returncode != 0
    assert name in result.stderr


def test_redis_requires_its_password_and_every_client_sends_it(config: dict[str, Any]) -> None:
    redis = config["services"]["redis"]
    command = " ".join(redis["command"]) if isinstance(redis["command"], list) else redis["command"]
    assert re.search(rf"--requirepass\s+\"?{re.escape(REDIS_PASSWORD)}\"?", command), command
    # The healthcheck's redis-cli authenticates through REDISCLI_AUTH.
    assert redis["environment"]["REDISCLI_AUTH"] == REDIS_PASSWORD
    for name in APPS | {"migrate", "s3-init"}:
        env = config["services"][name]["environment"]
        assert env["REDIS_URL"].startswith(f"redis://:{REDIS_PASSWORD}@redis:"), name
        # The broker is REDIS_URL unless set apart (misis/settings/base.py).
        broker = env.get("CELERY_BROKER_URL") or env["REDIS_URL"]
        assert f":{REDIS_PASSWORD}@" in broker, name


def test_postgres_requires_its_password_and_every_client_sends_it(config: dict[str, Any]) -> None:
    assert config["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] == POSTGRES_PASSWORD
    for name in APPS | {"migrate", "s3-init"}:
        url = config["services"][name]["environment"]["DATABASE_URL"]
        assert f":{POSTGRES_PASSWORD}@postgres:5432/" in url, name


def port_targets(ports: list[Any]) -> list[int]:
    """Container ports of a service's `ports` (compose's rendered dicts or the raw strings)."""
    return [
        int(p["target"]) if isinstance(p, dict) else int(str(p).rsplit(":", 1)[-1].split("/")[0])
        for p in ports
    ]


def networks_of(config: dict[str, Any], service: str) -> set[str]:
    networks = config["services"][service].get("networks")
    assert networks, f"{service} names its networks (else it joins `default`, beside others)"
    return set(networks)


def test_every_service_names_its_networks(config: dict[str, Any]) -> None:
    for name in config["services"]:
        networks_of(config, name)
    assert "default" not in config.get("networks", {})


def test_runners_reach_only_redis_postgres_and_the_s3_gateway(config: dict[str, Any]) -> None:
    networks = networks_of(config, "runner")
    assert networks == {"runners", "egress"}
    neighbours = {
        name
        for name in config["services"]
        if name != "runner" and networks_of(config, name) & networks
    }
    # Not the API, not the other workers, not SeaweedFS's master, volume or filer ports.
    assert neighbours == {"redis", "postgres", "s3"}
    assert config["networks"]["runners"].get("internal") is True


def test_the_s3_gateway_is_the_only_way_to_seaweedfs(config: dict[str, Any]) -> None:
    services = config["services"]
    assert networks_of(config, "seaweedfs") == {"storage"}
    assert config["networks"]["storage"].get("internal") is True
    assert {n for n in services if "storage" in networks_of(config, n)} == {"seaweedfs", "s3"}
    # The container runners see runs the S3 gateway alone (`weed s3`), not `weed server`.
    assert str(services["s3"]["command"]).split()[0] == "s3"
    assert not services["seaweedfs"].get("ports")
    assert port_targets(services["s3"].get("ports") or []) == [8333]


def test_sources_may_not_name_an_internal_service_or_subnet(config: dict[str, Any]) -> None:
    subnets = [
        ipaddress.ip_network(c["subnet"])
        for network in config["networks"].values()
        for c in network.get("ipam", {}).get("config", [])
    ]
    assert len(subnets) == len(config["networks"]), "every network has a fixed subnet"
    # The API checks a source when it is created, the runner before it connects: both deny.
    for name in APPS:
        env = config["services"][name]["environment"]
        entries = [e.strip() for e in env["MISIS_SOURCE_DENY"].split(",")]
        denied = [ipaddress.ip_network(e) for e in entries if re.fullmatch(r"[\d.:/a-f]+", e)]
        for subnet in subnets:
            assert any(subnet_of(subnet, d) for d in denied if d.version == subnet.version), (
                name,
                subnet,
            )
        missing = set(config["services"]) - set(entries)
        assert not missing, (name, missing)


def test_the_operators_deny_entries_are_kept(tmp_path: Path) -> None:
    result = compose(
        tmp_path, "config", extra={"MISIS_SOURCE_DENY": "10.20.99.0/24,bad.example.com"}
    )
    assert result.returncode == 0, result.stderr
    env = yaml.safe_load(result.stdout)["services"]["runner"]["environment"]
    entries = [e.strip() for e in env["MISIS_SOURCE_DENY"].split(",")]
    assert {"10.20.99.0/24", "bad.example.com", "redis", "postgres"} <= set(entries)


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
