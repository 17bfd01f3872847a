"""deploy/ stays parseable and in step with the code: ports, probes, hardening, env var names.

No Docker or Kubernetes here, so this checks the files, not a running deployment.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML ships no type hints; types-PyYAML is not a dev dependency
from pydantic_settings import BaseSettings

from catalog.config import CatalogSettings
from earning.config import EarningSettings
from points_cli.suite import DEFAULT_PORTS, SERVICES
from redemption.config import RedemptionSettings
from wallet.config import WalletSettings


def load_yaml_documents(text: str) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
METRICS_PORTS = {"wallet": 9101, "catalog": 9102, "earning": 9103, "redemption": 9104}
SETTINGS: dict[str, type[BaseSettings]] = {
    "wallet": WalletSettings,
    "catalog": CatalogSettings,
    "earning": EarningSettings,
    "redemption": RedemptionSettings,
}
PEERS = {"wallet": (), "catalog": (), "earning": ("wallet",), "redemption": ("wallet", "catalog")}


def env_names(service: str) -> set[str]:
    """Every POINTS_<SERVICE>_* variable the service's settings class reads."""
    settings = SETTINGS[service]
    prefix = settings.model_config["env_prefix"]
    assert prefix == f"POINTS_{service.upper()}_"
    return {prefix + name.upper() for name in settings.model_fields}


def required_env(service: str) -> set[str]:
    prefix = f"POINTS_{service.upper()}_"
    names = {"DATABASE_URL", "HOST", "PORT", "METRICS_PORT", "TOKENS_FILE", "NATS_URL"}
    names |= {f"{peer.upper()}_TARGET" for peer in PEERS[service]}
    return {prefix + n for n in names}


def load(path: Path) -> list[Any]:
    return load_yaml_documents(path.read_text())


def kind(path: Path, wanted: str) -> list[dict[str, Any]]:
    return [doc for doc in load(path) if doc["kind"] == wanted]


def deployment(service: str) -> dict[str, Any]:
    [dep] = kind(KUBERNETES / f"{service}.yaml", "Deployment")
    return dep


def configmap() -> dict[str, str]:
    [cm] = kind(KUBERNETES / "configmap.yaml", "ConfigMap")
    return {k: str(v) for k, v in cm["data"].items()}


def compose() -> dict[str, Any]:
    doc: dict[str, Any]
    [doc] = load(DEPLOY / "compose.yaml")
    return doc


def test_the_service_list_matches_the_suite() -> None:
    assert set(SERVICES) == set(SETTINGS) == set(DEFAULT_PORTS)


@pytest.mark.parametrize("path", sorted(DEPLOY.rglob("*.json")), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_json_file_parses(path: Path) -> None:
    assert isinstance(json.loads(path.read_text()), dict)


@pytest.mark.parametrize(
    "path",
    sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")]),
    ids=lambda p: str(p.relative_to(DEPLOY)),
)
def test_every_yaml_file_parses(path: Path) -> None:
    docs = load(path)
    assert docs and all(isinstance(doc, dict) for doc in docs)
    if path.parent == KUBERNETES and path.name != "kustomization.yaml":
        assert all({"apiVersion", "kind", "metadata"} <= set(doc) for doc in docs)


def test_kustomization_lists_every_manifest() -> None:
    [kustomization] = load(KUBERNETES / "kustomization.yaml")
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    assert {f"{s}.yaml" for s in SERVICES} <= listed


@pytest.mark.parametrize("service", SERVICES)
def test_deployment_probes_its_grpc_port(service: str) -> None:
    port = DEFAULT_PORTS[service]
    [container] = deployment(service)["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", service]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["grpc"]["port"] == port, probe
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": port, "metrics": METRICS_PORTS[service]}
    data = configmap()
    prefix = f"POINTS_{service.upper()}_"
    assert int(data[prefix + "PORT"]) == port
    assert int(data[prefix + "METRICS_PORT"]) == METRICS_PORTS[service]
    assert data[prefix + "HOST"] == "0.0.0.0"  # metrics bind to HOST too


@pytest.mark.parametrize("service", SERVICES)
def test_deployment_is_hardened(service: str) -> None:
    pod = deployment(service)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    for container in pod["containers"]:
        ctx = container["securityContext"]
        assert ctx["runAsNonRoot"] is True
        assert ctx["readOnlyRootFilesystem"] is True
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["capabilities"]["drop"] == ["ALL"]
        assert ctx["seccompProfile"]["type"] == "RuntimeDefault"
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert "memory" in container["resources"]["limits"]
    grace = float(configmap()[f"POINTS_{service.upper()}_SHUTDOWN_GRACE_SECONDS"])
    assert pod["terminationGracePeriodSeconds"] > grace


@pytest.mark.parametrize("service", SERVICES)
def test_kubernetes_env_names_are_settings_fields(service: str) -> None:
    [container] = deployment(service)["spec"]["template"]["spec"]["containers"]
    direct = {e["name"] for e in container["env"] if e["name"].startswith("POINTS_")}
    assert direct <= env_names(service), direct - env_names(service)
    own = {k for k in configmap() if k.startswith(f"POINTS_{service.upper()}_")}
    assert required_env(service) <= direct | own


def test_configmap_names_only_real_settings() -> None:
    valid = set().union(*(env_names(s) for s in SERVICES))
    unknown = {k for k in configmap() if k.startswith("POINTS_")} - valid
    assert not unknown, unknown


@pytest.mark.parametrize("service", SERVICES)
def test_compose_service_env_and_healthcheck(service: str) -> None:
    spec = compose()["services"][service]
    assert spec["command"] == ["python", "-m", service]
    env = {k: str(v) for k, v in spec["environment"].items()}
    names = {k for k in env if k.startswith("POINTS_")}
    assert names <= env_names(service), names - env_names(service)
    assert required_env(service) <= names
    prefix = f"POINTS_{service.upper()}_"
    assert env[prefix + "DATABASE_URL"].endswith(f"/points_{service}")
    assert int(env[prefix + "PORT"]) == DEFAULT_PORTS[service]
    assert int(env[prefix + "METRICS_PORT"]) == METRICS_PORTS[service]
    assert float(env[prefix + "SHUTDOWN_GRACE_SECONDS"]) < float(spec["stop_grace_period"].rstrip("s"))
    check = " ".join(spec["healthcheck"]["test"])
    assert "grpc_health" in check and f"127.0.0.1:{DEFAULT_PORTS[service]}" in check
    for peer in PEERS[service]:
        assert env[f"{prefix}{peer.upper()}_TARGET"] == f"{peer}:{DEFAULT_PORTS[peer]}"


def test_compose_creates_one_database_per_service() -> None:
    init = (DEPLOY / "postgres" / "init-databases.sql").read_text()
    for service in SERVICES:
        assert f"CREATE DATABASE points_{service};" in init


@pytest.mark.parametrize("config", ["prometheus.yml", "compose-prometheus.yml"])
def test_prometheus_scrapes_the_four_metrics_ports(config: str) -> None:
    [doc] = load(DEPLOY / "prometheus" / config)
    targets = [t for job in doc["scrape_configs"] for group in job["static_configs"] for t in group["targets"]]
    assert sorted(int(t.rsplit(":", 1)[1]) for t in targets) == sorted(METRICS_PORTS.values())
    assert doc["rule_files"] == ["alerts.yml"]


def alert_exprs() -> str:
    [doc] = load(DEPLOY / "prometheus" / "alerts.yml")
    rules = [rule for group in doc["groups"] for rule in group["rules"]]
    assert all({"alert", "expr", "labels", "annotations"} <= set(rule) for rule in rules)
    return " ".join(rule["expr"] for rule in rules)


def dashboard_exprs() -> str:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "points.json").read_text())
    return " ".join(t["expr"] for panel in dashboard["panels"] for t in panel["targets"])


def exported_metrics() -> set[str]:
    """Every metric the code defines (prometheus_client Counter/Gauge/Histogram), as scraped."""
    root = DEPLOY.parent
    names: set[str] = set()
    for source in [*(root / "services").rglob("*.py"), *(root / "libs" / "points_platform").rglob("*.py")]:
        for kind, name in re.findall(r"\b(Counter|Gauge|Histogram)\(\s*\"(points_[a-z_]+)\"", source.read_text()):
            names.add(name)
            if kind == "Histogram":
                names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    return names


def test_alerts_use_the_exported_metrics() -> None:
    exprs = alert_exprs()
    for metric in ("points_rpc_requests_total", "points_rpc_duration_seconds_bucket", "points_rpc_auth_failures_total"):
        assert metric in exprs


@pytest.mark.parametrize("exprs", [alert_exprs, dashboard_exprs], ids=["alerts", "dashboard"])
def test_every_metric_queried_is_exported(exprs: Any) -> None:
    """A renamed metric would leave an alert that never fires or an empty panel."""
    names_only = re.sub(r"\b(by|without)\s*\([^)]*\)|\{[^}]*\}", "", exprs())  # drop label names and matchers
    queried = set(re.findall(r"\bpoints_[a-z_]+", names_only))
    exported = exported_metrics()
    assert "points_earning_credits_failed" in exported and "points_rpc_duration_seconds_bucket" in exported
    assert queried and queried <= exported, sorted(queried - exported)


def test_grafana_provisions_prometheus_and_the_dashboard() -> None:
    grafana = compose()["services"]["grafana"]
    assert "prometheus" in grafana["depends_on"]
    assert {v.split(":")[1] for v in grafana["volumes"]} == {"/etc/grafana/provisioning", "/var/lib/grafana/dashboards"}
    [datasources] = load(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    [providers] = load(DEPLOY / "grafana" / "provisioning" / "dashboards" / "points.yml")
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "points.json").read_text())
    uids = {p["datasource"]["uid"] for p in dashboard["panels"]}
    assert uids == {datasources["datasources"][0]["uid"]}
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"


@pytest.mark.parametrize("path", sorted((DEPLOY / "ghz").glob("*.json")), ids=lambda p: p.name)
def test_ghz_config_targets_the_right_port(path: Path) -> None:
    cfg = json.loads(path.read_text())
    service = path.stem.split("-", 1)[1] if path.stem.startswith("health-") else path.stem.split("-", 1)[0]
    assert cfg["host"] == f"127.0.0.1:{DEFAULT_PORTS[service]}"
    assert "proto" not in cfg and "protoset" not in cfg  # reflection
    if cfg["call"].startswith("grpc.health.v1."):
        assert "metadata" not in cfg
    else:
        assert cfg["call"].startswith(f"points.{service}.v1.")
        assert cfg["metadata"]["authorization"].startswith("Bearer REPLACE_WITH_")
        text = json.dumps(cfg["data"])
        assert "{{newUUID}}" in text or "{{.RequestNumber}}" in text
