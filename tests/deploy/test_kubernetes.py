"""deploy/kubernetes against the Kubernetes API schemas and the availability and network rules of
docs/architecture.md: schema-valid (kubernetes-validate, offline), no Secret shipped, two or more
replicas spread over nodes with a disruption budget and a CPU autoscaler, and network policies
that allow exactly the documented caller -> service edges.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]  # ships no type hints
import pytest

from points_cli.suite import DEFAULT_PORTS, SERVICES
from tests.deploy.test_manifests import KUBERNETES, METRICS_PORTS, PEERS, deployment, kind, load

# The oldest release the manifests need (native gRPC probes) and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())
MANIFESTS = sorted(p for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")
NAMESPACE = {"kubernetes.io/metadata.name": "points", "app.kubernetes.io/part-of": "points"}
CALLER_NAMESPACE = {"kubernetes.io/metadata.name": "app", "points/caller": "true"}
SCRAPER_NAMESPACE = {"kubernetes.io/metadata.name": "monitoring", "points/scraper": "true"}
OTHER_NAMESPACE = {"kubernetes.io/metadata.name": "elsewhere"}
Pod = tuple[dict[str, str], dict[str, str]]  # (namespace labels, pod labels)


def pod_of(service: str) -> Pod:
    """A pod of `service` as kustomize deploys it (the part-of label is added to every object)."""
    return NAMESPACE, {"app.kubernetes.io/name": service, "app.kubernetes.io/part-of": "points"}


def policies() -> list[dict[str, Any]]:
    return [doc for path in MANIFESTS for doc in load(path) if doc["kind"] == "NetworkPolicy"]


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    assert set(selector or {}) <= {"matchLabels"}, "matchExpressions are not evaluated by this test"
    wanted: dict[str, str] = (selector or {}).get("matchLabels", {})
    return wanted.items() <= labels.items()


def peer_matches(peer: dict[str, Any], pod: Pod) -> bool:
    """One `from`/`to` entry of a policy in the points namespace against a pod."""
    namespace, labels = pod
    if "ipBlock" in peer:
        return False  # pods are reached by selectors here; ipBlocks are for outside addresses
    if "namespaceSelector" in peer:
        in_namespace = selects(peer["namespaceSelector"], namespace)
    else:
        in_namespace = namespace == NAMESPACE
    return in_namespace and selects(peer.get("podSelector"), labels)


def allows(direction: str, subject: Pod, other: Pod, port: int) -> bool:
    """Whether the policies selecting `subject` let traffic `direction` (Ingress/Egress) with `other`
    on `port`. A pod selected by no policy of that direction would be open; default-deny selects all."""
    rules_key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    relevant = [
        p for p in policies() if direction in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], subject[1])
    ]
    assert relevant, f"no {direction} policy selects {subject}"
    for policy in relevant:
        for rule in policy["spec"].get(rules_key, []):
            ports = {entry["port"] for entry in rule.get("ports", [{"port": port}])}
            if port in ports and any(peer_matches(peer, other) for peer in rule.get(peers_key, [])):
                return True
    return False


def reaches(source: Pod, target: Pod, port: int) -> bool:
    """Traffic flows only when the source may send it and the target may receive it."""
    source_is_ours = source[0] == NAMESPACE
    egress = allows("Egress", source, target, port) if source_is_ours else True
    return egress and allows("Ingress", target, source, port)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifests_are_schema_valid(path: Path, version: str) -> None:
    for doc in load(path):
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_validator_rejects_an_unknown_field() -> None:
    """The schema check above can fail: a misspelt field is an error in strict mode."""
    bad = {**deployment("wallet"), "spec": {**deployment("wallet")["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSIONS[0], strict=True)


def test_no_secret_is_shipped() -> None:
    """Secrets are created out of band (deploy/README.md); a placeholder would be deployed as is."""
    for path in KUBERNETES.glob("*.yaml"):
        assert all(doc.get("kind") != "Secret" for doc in load(path)), path.name


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_survives_a_node_loss_and_a_drain(service: str) -> None:
    spec = deployment(service)["spec"]
    assert spec["replicas"] >= 2
    selector = spec["selector"]["matchLabels"]
    spread = {c["topologyKey"]: c for c in spec["template"]["spec"]["topologySpreadConstraints"]}
    assert spread["kubernetes.io/hostname"]["whenUnsatisfiable"] == "DoNotSchedule"
    assert "topology.kubernetes.io/zone" in spread
    assert all(c["labelSelector"]["matchLabels"] == selector for c in spread.values())
    [budget] = kind(KUBERNETES / f"{service}.yaml", "PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"] == selector
    assert budget["spec"]["maxUnavailable"] < spec["replicas"]


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_scales_on_cpu(service: str) -> None:
    [hpa] = kind(KUBERNETES / f"{service}.yaml", "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", service)
    assert hpa["spec"]["minReplicas"] == deployment(service)["spec"]["replicas"]
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]


def test_network_policies_deny_by_default() -> None:
    [deny] = [p for p in policies() if p["metadata"]["name"] == "default-deny"]
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_service_to_service_traffic_is_exactly_the_documented_edges() -> None:
    documented = {(caller, callee) for caller, callees in PEERS.items() for callee in callees}
    allowed = {
        (source, target)
        for source in SERVICES
        for target in SERVICES
        if source != target and reaches(pod_of(source), pod_of(target), DEFAULT_PORTS[target])
    }
    assert allowed == documented


@pytest.mark.parametrize("service", SERVICES)
def test_outside_callers_and_prometheus_reach_only_their_ports(service: str) -> None:
    caller: Pod = (CALLER_NAMESPACE, {"app": "backend"})
    scraper: Pod = (SCRAPER_NAMESPACE, {"app": "prometheus"})
    stranger: Pod = (OTHER_NAMESPACE, {"app": "backend"})
    grpc_port, metrics_port = DEFAULT_PORTS[service], METRICS_PORTS[service]
    assert reaches(caller, pod_of(service), grpc_port)
    assert not reaches(caller, pod_of(service), metrics_port)
    assert reaches(scraper, pod_of(service), metrics_port)
    assert not reaches(scraper, pod_of(service), grpc_port)
    assert not reaches(stranger, pod_of(service), grpc_port)


@pytest.mark.parametrize("service", SERVICES)
def test_every_pod_resolves_names_and_reaches_postgres(service: str) -> None:
    dns: Pod = ({"kubernetes.io/metadata.name": "kube-system"}, {"k8s-app": "kube-dns"})
    assert allows("Egress", pod_of(service), dns, 53)
    postgres = [
        rule
        for p in policies()
        if selects(p["spec"]["podSelector"], pod_of(service)[1])
        for rule in p["spec"].get("egress", [])
        if any(port["port"] == 5432 for port in rule.get("ports", []))
    ]
    assert postgres, "no egress to PostgreSQL"
