"""deploy/k8s against the Kubernetes API schemas (kubernetes-validate ships them: no network,
no cluster), and the wiring between the objects that the schemas cannot see: probes, ports,
selectors, the token file, the autoscaler's target."""
from __future__ import annotations

import copy
import shutil
import socket
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.conftest import REPO

K8S = REPO / "deploy" / "k8s"
# The oldest Kubernetes minor we claim and the newest whose schemas kubernetes-validate
# 1.37.0 ships; strict schemas reject fields the API does not have.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
BENTO_NAME = "genloop_generator"          # @bentoml.service(name=...) in deploy/service.py


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the manifest tests must not use the network")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _manifests() -> dict[str, list[dict]]:
    """Every Kubernetes object in deploy/k8s by file name (kustomization.yaml is kustomize's
    input, not an API object)."""
    files = sorted(p for p in K8S.glob("*.y*ml") if p.name != "kustomization.yaml")
    return {p.name: [d for d in yaml.safe_load_all(p.read_text()) if d] for p in files}


def _objects() -> dict[str, dict]:
    found = {}
    for docs in _manifests().values():
        for doc in docs:
            assert doc["kind"] not in found, f"two {doc['kind']} objects in deploy/k8s"
            found[doc["kind"]] = doc
    return found


def _validate(doc: dict, version: str, strict: bool = True) -> str:
    return kubernetes_validate.validate(doc, version, strict=strict)


def _container(deployment: dict) -> dict:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _port_number(container: dict, port: int | str) -> int:
    """A probe's or Service's port (number or container-port name) as the container's number."""
    numbers = {p["containerPort"] for p in container["ports"]}
    by_name = {p["name"]: p["containerPort"] for p in container["ports"] if "name" in p}
    resolved = by_name.get(port) if isinstance(port, str) else port
    assert resolved in numbers, f"port {port!r} is not one of the container's ports {container['ports']}"
    return resolved


def test_the_expected_objects_are_there():
    assert sorted(_objects()) == ["Deployment", "HorizontalPodAutoscaler", "Secret", "Service"]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_validates_strictly(version):
    for name, docs in _manifests().items():
        for doc in docs:
            try:
                assert _validate(doc, version) == version.rsplit(".", 1)[0]
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{name}: {doc['kind']} at {'.'.join(map(str, exc.path))}: {exc.message}")


@pytest.mark.parametrize("breakage, strict_only", [
    (lambda c: c["livenessProbe"]["httpGet"].__setitem__("port", [3000]), False),   # wrong type
    (lambda c: c["resources"]["requests"].__setitem__("cpu", ["1"]), False),
    (lambda c: c["readinessProbe"]["httpGet"].__setitem__("pathh", "/readyz"), True),  # unknown field
    (lambda c: c["env"][0].__setitem__("vaule", "x"), True),
], ids=["probe-port-list", "cpu-list", "unknown-probe-field", "unknown-env-field"])
def test_a_broken_copy_fails_validation(breakage, strict_only):
    broken = copy.deepcopy(_objects()["Deployment"])
    breakage(_container(broken))
    for version in KUBERNETES_VERSIONS:
        with pytest.raises(kubernetes_validate.ValidationError):
            _validate(broken, version)
        if strict_only:             # the lax schemas allow unknown fields: strict mode is what catches them
            assert _validate(broken, version, strict=False)
        else:
            with pytest.raises(kubernetes_validate.ValidationError):
                _validate(broken, version, strict=False)


def test_probes_hit_bentoml_health_endpoints_on_the_container_port():
    container = _container(_objects()["Deployment"])
    assert [p["containerPort"] for p in container["ports"]] == [3000]       # bentoml serve's port
    expected = {"startupProbe": "/livez", "livenessProbe": "/livez", "readinessProbe": "/readyz"}
    for probe, path in expected.items():
        get = container[probe]["httpGet"]
        assert get["path"] == path, probe
        assert _port_number(container, get["port"]) == 3000, probe
    # the liveness probe must not kill a pod still loading its model: the startup probe
    # (which holds liveness back) allows longer than liveness itself would
    startup, liveness = container["startupProbe"], container["livenessProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60
    assert startup["periodSeconds"] * startup["failureThreshold"] > \
        liveness["periodSeconds"] * liveness["failureThreshold"]


def test_prometheus_scrapes_the_served_port():
    deployment = _objects()["Deployment"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert _port_number(_container(deployment), int(annotations["prometheus.io/port"])) == 3000


def test_selectors_and_targets_line_up():
    objs = _objects()
    deployment, service, hpa = objs["Deployment"], objs["Service"], objs["HorizontalPodAutoscaler"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items(), "the Deployment would not select its own pods"
    assert service["spec"]["selector"].items() <= pod_labels.items(), "the Service selects no generator pod"
    assert service["spec"]["selector"] == selector

    (port,) = service["spec"]["ports"]
    assert port["port"] == 80
    assert _port_number(_container(deployment), port["targetPort"]) == 3000
    assert service["spec"]["type"] == "ClusterIP"

    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == \
        (deployment["apiVersion"], "Deployment", deployment["metadata"]["name"])
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_the_autoscaler_has_a_cpu_request_to_measure_against():
    hpa = _objects()["HorizontalPodAutoscaler"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    resources = _container(_objects()["Deployment"])["resources"]
    assert resources["requests"]["cpu"] and resources["limits"]["memory"]


def test_the_token_file_is_the_mounted_secret_key():
    objs = _objects()
    deployment, secret = objs["Deployment"], objs["Secret"]
    container, pod = _container(deployment), deployment["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert "GENLOOP_API_TOKENS" not in env, "tokens belong in the Secret file, not in the pod spec"
    token_file = Path(env["GENLOOP_API_TOKENS_FILE"])

    volumes = {v["name"]: v for v in pod["volumes"]}
    (mount,) = [m for m in container["volumeMounts"] if token_file.parent == Path(m["mountPath"])]
    assert mount.get("readOnly") is True and "subPath" not in mount    # subPath would miss rotations
    source = volumes[mount["name"]]["secret"]
    assert source["secretName"] == secret["metadata"]["name"]
    (item,) = [i for i in source["items"] if i["path"] == token_file.name]
    assert item["key"] in secret["stringData"]
    assert secret["type"] == "Opaque"

    # the placeholder is one token (blank and # lines are ignored) and says to replace it
    tokens = [t.strip() for t in secret["stringData"][item["key"]].splitlines()
              if t.strip() and not t.strip().startswith("#")]
    assert len(tokens) == 1 and "REPLACE" in tokens[0].upper()
    # the documented `kubectl create secret` makes the same key
    for doc in (K8S / "secret.yaml", REPO / "deploy" / "README.md"):
        assert f"--from-file={item['key']}=" in doc.read_text(), doc


def test_the_generation_log_is_a_volume():
    deployment = _objects()["Deployment"]
    container, pod = _container(deployment), deployment["spec"]["template"]["spec"]
    monitor_dir = {e["name"]: e.get("value") for e in container["env"]}["GENLOOP_MONITOR_DIR"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert monitor_dir in mounts
    assert mounts[monitor_dir] in {v["name"] for v in pod["volumes"]}
    for m in container["volumeMounts"]:
        assert m["name"] in {v["name"] for v in pod["volumes"]}, m


def test_runs_as_bentomls_non_root_user():
    pod = _objects()["Deployment"]["spec"]["template"]["spec"]
    ctx = pod["securityContext"]
    # BentoML's Dockerfile ends with `USER bentoml` (uid 1034); a user name cannot be checked
    # by runAsNonRoot, so the pod must give the uid
    assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] == 1034 and ctx["fsGroup"] == 1034
    assert _container(_objects()["Deployment"])["securityContext"]["allowPrivilegeEscalation"] is False


def test_the_image_is_the_bento():
    image = _container(_objects()["Deployment"])["image"]
    assert image.rsplit(":", 1)[0] == BENTO_NAME
    assert f'"{BENTO_NAME}"' in (REPO / "deploy" / "service.py").read_text(), \
        "the bento's service name changed: update the image in deploy/k8s"


def test_kustomization_lists_every_manifest_but_the_placeholder_secret():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(set(_manifests()) - {"secret.yaml"})
    image = _container(_objects()["Deployment"])["image"].rsplit(":", 1)[0]
    assert [i["name"] for i in kustomization["images"]] == [image]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed (kustomize build)")
def test_the_kustomize_build_validates():
    out = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    assert sorted(d["kind"] for d in docs) == ["Deployment", "HorizontalPodAutoscaler", "Service"]
    for doc in docs:
        for version in KUBERNETES_VERSIONS:
            _validate(doc, version)
