"""NATS in deploy/: the compose service and the Kubernetes StatefulSet with JetStream on a volume,
every service pointed at it, the network edges to it, its configuration accepted by a real
nats-server, and the alert on the outbox backlog's age."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from points_cli.suite import DEFAULT_PORTS, SERVICES
from points_platform.embedded_nats import nats_server_binary
from tests.deploy.test_kubernetes import (
    CALLER_NAMESPACE,
    NAMESPACE,
    OTHER_NAMESPACE,
    SCRAPER_NAMESPACE,
    Pod,
    pod_of,
    reaches,
)
from tests.deploy.test_manifests import DEPLOY, KUBERNETES, compose, configmap, kind, load

NATS_PORT = 4222
CONSUMER_NAMESPACE = {"kubernetes.io/metadata.name": "notifications", "points/events-consumer": "true"}


def statefulset() -> dict[str, Any]:
    [sts] = kind(KUBERNETES / "nats.yaml", "StatefulSet")
    return sts


def nats_conf() -> str:
    [config] = kind(KUBERNETES / "nats.yaml", "ConfigMap")
    text: str = config["data"]["nats.conf"]
    return text


def test_compose_runs_nats_with_jetstream_on_a_volume_and_points_every_service_at_it() -> None:
    doc = compose()
    nats = doc["services"]["nats"]
    assert nats["image"].startswith("nats:")
    assert "--jetstream" in nats["command"]
    store = nats["command"][nats["command"].index("--store_dir") + 1]
    volume, mount = nats["volumes"][0].split(":")[:2]
    assert mount == store and volume in doc["volumes"]
    assert "js-enabled-only=true" in " ".join(nats["healthcheck"]["test"])
    for service in SERVICES:
        env = doc["services"][service]["environment"]
        assert env[f"POINTS_{service.upper()}_NATS_URL"] == f"nats://nats:{NATS_PORT}"
        # A service starts without NATS: its relay keeps the events until NATS answers.
        assert "nats" not in doc["services"][service].get("depends_on", {})


def test_kubernetes_runs_nats_as_a_statefulset_storing_jetstream_on_its_volume() -> None:
    sts = statefulset()
    pod = sts["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"].startswith("nats:")
    [claim] = sts["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert f"store_dir: {mounts[claim['metadata']['name']]}" in nats_conf()
    assert "jetstream {" in nats_conf()
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz?js-enabled-only=true", probe
    assert sts["spec"]["serviceName"] in {s["metadata"]["name"] for s in kind(KUBERNETES / "nats.yaml", "Service")}


def test_nats_is_hardened_like_the_services() -> None:
    pod = statefulset()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsUser"]  # writes its volume
    [container] = pod["containers"]
    ctx = container["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True and ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]


def test_every_service_is_given_the_nats_service_url() -> None:
    [service] = [s for s in kind(KUBERNETES / "nats.yaml", "Service") if s["spec"].get("clusterIP") != "None"]
    ports = {p["port"] for p in service["spec"]["ports"]}
    assert NATS_PORT in ports
    url = f"nats://{service['metadata']['name']}.points.svc.cluster.local:{NATS_PORT}"
    assert {configmap()[f"POINTS_{s.upper()}_NATS_URL"] for s in SERVICES} == {url}


def test_the_nats_configuration_is_accepted_by_nats_server(tmp_path: Path) -> None:
    conf = tmp_path / "nats.conf"
    conf.write_text(nats_conf().replace("store_dir: /data", f"store_dir: {tmp_path / 'data'}"))
    checked = subprocess.run(
        [str(nats_server_binary()), "-c", str(conf), "-t"], capture_output=True, text=True, timeout=60, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_configuration_check_can_fail(tmp_path: Path) -> None:
    conf = tmp_path / "nats.conf"
    conf.write_text(nats_conf() + "\nlame_duck_duration: 1s\n")  # below nats-server's minimum
    checked = subprocess.run(
        [str(nats_server_binary()), "-c", str(conf), "-t"], capture_output=True, text=True, timeout=60, check=False
    )
    assert checked.returncode != 0


NATS_POD: Pod = (NAMESPACE, {"app.kubernetes.io/name": "nats", "app.kubernetes.io/part-of": "points"})


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_reaches_nats_and_nats_reaches_no_service(service: str) -> None:
    assert reaches(pod_of(service), NATS_POD, NATS_PORT)
    assert not reaches(NATS_POD, pod_of(service), DEFAULT_PORTS[service])


def test_outside_event_consumers_reach_nats_and_nobody_else_does() -> None:
    assert reaches((CONSUMER_NAMESPACE, {"app": "notifications"}), NATS_POD, NATS_PORT)
    for namespace in (CALLER_NAMESPACE, SCRAPER_NAMESPACE, OTHER_NAMESPACE):
        assert not reaches((namespace, {"app": "backend"}), NATS_POD, NATS_PORT), namespace
    assert not reaches((CONSUMER_NAMESPACE, {"app": "notifications"}), NATS_POD, 8222)  # monitoring: probes only
    # Event consumers get the events, not the services' gRPC ports.
    for service in SERVICES:
        assert not reaches((CONSUMER_NAMESPACE, {"app": "notifications"}), pod_of(service), DEFAULT_PORTS[service])


def test_an_alert_fires_when_the_outbox_backlog_ages() -> None:
    [doc] = load(DEPLOY / "prometheus" / "alerts.yml")
    rules = {rule["alert"]: rule for group in doc["groups"] for rule in group["rules"]}
    aging = rules["PointsOutboxBacklogAging"]
    assert "points_outbox_oldest_age_seconds" in aging["expr"] and ">" in aging["expr"]
    assert "points_outbox_publish_errors_total" in rules["PointsOutboxPublishErrors"]["expr"]
