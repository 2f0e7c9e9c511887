"""Kubernetes manifests: every kustomization renders and every object is valid, offline.

`kubectl kustomize` (Debian's kubectl, installed by `./run.sh --test`) renders the base, each
overlay and the optional components; `kubernetes-validate` checks every object against the
bundled Kubernetes schemas (strict: an unknown field fails), for the oldest and the newest
version the manifests support. The rest are the deployment's invariants: one beat, probes,
requests and a locked-down security context on every container, no secret in the repository,
and runners that reach the internet but not the cluster.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.helpers import subnet_of

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "kubernetes"
TARGETS = ["base", "overlays/cpu", "overlays/gpu", "gpu+components"]
VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]
WORKERS = {"orchestrator", "runner", "inference"}
DEPLOYMENTS = {"api", "beat"} | WORKERS
# Where a cluster's nodes, pods and services live, and the cloud metadata endpoint: runners may
# reach none of them.
INTERNAL = [
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16")
]
# Built from docker/<name>.Dockerfile.
IMAGES = {"misis-api": "api", "misis-worker": "worker", "misis-inference": "inference"}
IMAGES["misis-flower"] = "flower"


# This module needs neither Redis nor the video fixtures of conftest.py.
pytestmark = pytest.mark.offline


def kustomize(path: Path) -> list[dict[str, Any]]:
    assert shutil.which("kubectl"), "kubectl is missing (./run.sh --test installs it)"
    result = subprocess.run(
        ["kubectl", "kustomize", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


_rendered: dict[str, list[dict[str, Any]]] = {}


def render(target: str, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    if target not in _rendered:
        if target == "gpu+components":
            # An operator's overlay: the GPU overlay plus every optional component. Kustomize
            # takes only relative paths to other kustomizations.
            root = tmp_path_factory.mktemp("overlay")
            rel = Path(os.path.relpath(K8S, root))
            (root / "kustomization.yaml").write_text(
                yaml.safe_dump(
                    {
                        "apiVersion": "kustomize.config.k8s.io/v1beta1",
                        "kind": "Kustomization",
                        "resources": [str(rel / "overlays/gpu")],
                        "components": [
                            str(rel / "components" / c.name)
                            for c in sorted((K8S / "components").iterdir())
                        ],
                    }
                )
            )
            _rendered[target] = kustomize(root)
        else:
            _rendered[target] = kustomize(K8S / target)
    return _rendered[target]


@pytest.fixture(params=TARGETS)
def docs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return render(request.param, tmp_path_factory)


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pod_specs(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        f"{d['kind']}/{d['metadata']['name']}": d["spec"]["template"]["spec"]
        for d in docs
        if d["kind"] in ("Deployment", "Job")
    }


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_is_valid(docs: list[dict[str, Any]], version: str) -> None:
    assert docs
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} on {version}: {exc.message}")


def test_the_stack_is_all_there(docs: list[dict[str, Any]]) -> None:
    assert set(of_kind(docs, "Deployment")) >= DEPLOYMENTS
    assert "api" in of_kind(docs, "Service")
    migrate = of_kind(docs, "Job")["migrate"]["spec"]["template"]["spec"]["containers"][0]
    assert migrate["command"][-2:] == ["migrate", "--no-input"]
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {"misis"}


def test_beat_is_exactly_one(docs: list[dict[str, Any]]) -> None:
    beat = of_kind(docs, "Deployment")["beat"]["spec"]
    assert beat["replicas"] == 1
    # A rolling update would run the old and the new beat side by side.
    assert beat["strategy"] == {"type": "Recreate"}
    assert not any(
        pdb["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/component") == "beat"
        for pdb in of_kind(docs, "PodDisruptionBudget").values()
    )


def test_every_container_has_requests_and_a_locked_down_security_context(
    docs: list[dict[str, Any]],
) -> None:
    for name, spec in pod_specs(docs).items():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        for c in spec["containers"] + spec.get("initContainers", []):
            where = f"{name}/{c['name']}"
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]), where
            assert "memory" in c["resources"]["limits"], where
            ctx = c["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert ctx["capabilities"] == {"drop": ["ALL"]}, where
            assert c["image"].split(":")[0] in IMAGES, where


def test_images_are_built_here() -> None:
    for name in IMAGES.values():
        assert (ROOT / "docker" / f"{name}.Dockerfile").is_file(), name


def test_every_long_running_container_has_probes(docs: list[dict[str, Any]]) -> None:
    for name, deployment in of_kind(docs, "Deployment").items():
        for c in deployment["spec"]["template"]["spec"]["containers"]:
            assert "livenessProbe" in c, name
            assert "readinessProbe" in c or "startupProbe" in c, name


def test_the_api_is_probed_on_health(docs: list[dict[str, Any]]) -> None:
    api = of_kind(docs, "Deployment")["api"]["spec"]["template"]["spec"]["containers"][0]
    for probe in ("readinessProbe", "startupProbe"):
        get = api[probe]["httpGet"]
        assert get["path"] == "/health/"
        # Production settings refuse a Host outside DJANGO_ALLOWED_HOSTS; a pod IP is one.
        (host,) = [h["value"] for h in get["httpHeaders"] if h["name"] == "Host"]
        config = next(iter(of_kind(docs, "ConfigMap").values()))["data"]
        assert host in config["DJANGO_ALLOWED_HOSTS"].split(",")


def test_workers_are_probed_by_their_healthcheck(docs: list[dict[str, Any]]) -> None:
    deployments = of_kind(docs, "Deployment")
    for name in WORKERS | {"beat"}:
        (c,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        kind = "beat" if name == "beat" else "worker"
        for probe in ("livenessProbe", "startupProbe"):
            assert c[probe]["exec"]["command"] == [
                "python",
                "/app/docker/healthcheck.py",
                kind,
            ], name
        if kind == "worker":
            # healthcheck.py pings $MISIS_WORKER_NAME@<hostname>: the node name must match.
            assert env_of(c)["MISIS_WORKER_NAME"] == name
            command = c["command"]
            assert command[command.index("-n") + 1] == f"{name}@%h"
            assert command[command.index("-Q") + 1] == name


def test_every_app_pod_waits_for_migrations(docs: list[dict[str, Any]]) -> None:
    for name in DEPLOYMENTS:
        spec = of_kind(docs, "Deployment")[name]["spec"]["template"]["spec"]
        commands = [c["command"] for c in spec.get("initContainers", [])]
        assert ["python", "manage.py", "migrate", "--check"] in commands, name


def test_disruption_budgets(docs: list[dict[str, Any]]) -> None:
    budgets = {
        pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]: pdb["spec"]
        for pdb in of_kind(docs, "PodDisruptionBudget").values()
    }
    assert set(budgets) == {"api", "orchestrator", "runner", "inference"}
    assert budgets["runner"] == {**budgets["runner"], "maxUnavailable": 1}


def test_runners_surge_before_they_go(docs: list[dict[str, Any]]) -> None:
    runner = of_kind(docs, "Deployment")["runner"]["spec"]
    # A rollout starts a new runner first, so that the old one's hand-over lands somewhere.
    assert runner["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    grace = runner["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= 30


def test_no_secret_is_committed(docs: list[dict[str, Any]]) -> None:
    assert not of_kind(docs, "Secret")
    secret_name = re.compile(r"SECRET|PASSWORD|TOKEN|_KEY|AUTH|DATABASE_URL|REDIS_URL")
    for name, spec in pod_specs(docs).items():
        for c in spec["containers"] + spec.get("initContainers", []):
            for key, value in env_of(c).items():
                if secret_name.search(key):
                    assert isinstance(value, dict) and "secretKeyRef" in value, (name, key)
            refs = {e["secretRef"]["name"] for e in c.get("envFrom", []) if "secretRef" in e}
            assert refs <= {"misis-secrets"}, name
    for config in of_kind(docs, "ConfigMap").values():
        assert not [k for k in config["data"] if secret_name.search(k)], config["data"]


def test_the_secret_example_holds_no_value() -> None:
    for line in (K8S / "base" / "secret.example.env").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            assert value == "" or "<password>" in value, key
    kustomizations = list(K8S.rglob("kustomization.yaml"))
    assert kustomizations
    for path in kustomizations:
        assert "secretGenerator" not in yaml.safe_load(path.read_text()), path


def runner_policy(docs: list[dict[str, Any]]) -> dict[str, Any]:
    policies = [
        p
        for p in of_kind(docs, "NetworkPolicy").values()
        if p["spec"]["podSelector"]["matchLabels"].get("app.kubernetes.io/component") == "runner"
    ]
    assert len(policies) == 1
    return dict(policies[0]["spec"])


def test_nothing_connects_to_a_runner(docs: list[dict[str, Any]]) -> None:
    spec = runner_policy(docs)
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    assert spec["ingress"] == []


def test_runners_reach_dns_postgres_redis_and_outside_only(docs: list[dict[str, Any]]) -> None:
    by_port: set[int] = set()
    for rule in runner_policy(docs)["egress"]:
        assert rule.get("to"), "a rule without `to` allows every destination"
        for peer in rule["to"]:
            if "ipBlock" in peer:
                cidr = ipaddress.ip_network(peer["ipBlock"]["cidr"])
                excepted = [ipaddress.ip_network(e) for e in peer["ipBlock"].get("except", [])]
                for internal in INTERNAL:
                    if cidr.version != internal.version or not cidr.overlaps(internal):
                        continue
                    # Only a range wholly inside a private one may be named (a camera network,
                    # components/camera-networks); 0.0.0.0/0 must except every internal range.
                    covers = subnet_of(internal, cidr)  # cidr.supernet_of(internal)
                    assert not covers or any(subnet_of(internal, e) for e in excepted), (
                        cidr,
                        internal,
                    )
            else:
                # Pods of the cluster: only by port, and only DNS, PostgreSQL and Redis.
                ports = {p["port"] for p in rule["ports"]}
                assert ports and ports <= {53, 5432, 6379}, rule
                by_port |= ports
    assert by_port == {53, 5432, 6379}


def test_gpu_overlay_gives_each_inference_pod_one_gpu(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    spec = of_kind(render("overlays/gpu", tmp_path_factory), "Deployment")["inference"]["spec"]
    pod = spec["template"]["spec"]
    (c,) = pod["containers"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    assert env_of(c)["MISIS_DEVICE"] == "cuda:0"


def test_cpu_overlay_asks_for_no_gpu(tmp_path_factory: pytest.TempPathFactory) -> None:
    docs = render("overlays/cpu", tmp_path_factory)
    assert "nvidia.com/gpu" not in yaml.safe_dump_all(docs)
    (c,) = of_kind(docs, "Deployment")["inference"]["spec"]["template"]["spec"]["containers"]
    assert env_of(c)["MISIS_DEVICE"] == "cpu"


def test_flower_is_optional_pinned_and_behind_a_password(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    assert "flower" not in of_kind(render("overlays/gpu", tmp_path_factory), "Deployment")
    docs = render("gpu+components", tmp_path_factory)
    flower = of_kind(docs, "Deployment")["flower"]["spec"]["template"]["spec"]["containers"][0]
    assert env_of(flower)["FLOWER_BASIC_AUTH"] == {
        "secretKeyRef": {"name": "misis-flower", "key": "FLOWER_BASIC_AUTH"}
    }
    assert "flower" in of_kind(docs, "Service")
    assert "flower==2.2.0" in (ROOT / "requirements" / "flower.txt").read_text().split()
    # The image refuses to start without credentials.
    dockerfile = (ROOT / "docker" / "flower.Dockerfile").read_text()
    assert '[ -n \\"$FLOWER_BASIC_AUTH\\" ] ||' in dockerfile
