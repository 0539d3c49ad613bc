"""deploy/prefect.yaml read by Prefect's own models (what `prefect deploy` parses), its
deployments against the flows they run, `genloop deploy`'s one-line errors, and the
Kubernetes work pool's base job template in deploy/k8s: a valid template for the Prefect
server, a Job that the Prefect Kubernetes worker accepts, and, rendered as the worker renders
it, a Job that validates against the Kubernetes API schemas (kubernetes-validate, offline)."""
from __future__ import annotations

import copy
import json
import os
import shlex
import subprocess
import sys

import jsonpatch
import jsonschema
import kubernetes_validate
import pytest
import yaml

from components.deployments import read_prefect_file
from components.errors import GenloopError
from tests.conftest import REPO
from tests.e2e.processes import free_port

PREFECT_FILE = REPO / "deploy" / "prefect.yaml"
WORK_POOL = REPO / "deploy" / "k8s" / "prefect-work-pool.json"
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")     # as tests/deploy/test_k8s_manifests.py
GENLOOP = [sys.executable, "-c", "from flows.cli import main; main()"]
# What prefect-kubernetes' worker demands of every job manifest (_get_base_job_manifest in
# prefect_kubernetes/worker.py): it refuses a template missing any of it or changing a value.
# `parallelism` and `completions` sit in the pod spec there, where Kubernetes has no such
# fields (the API server drops them): the worker's quirk, kept so the worker accepts the Job.
WORKER_BASE_MANIFEST = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"labels": {}},
                        "spec": {"template": {"spec": {"parallelism": 1, "completions": 1, "restartPolicy": "Never",
                                                       "containers": [{"name": "prefect-job"}]}}}}
POD_SPEC_QUIRKS = ("parallelism", "completions")


def _deployments() -> dict[str, dict]:
    return {d["name"]: d for d in yaml.safe_load(PREFECT_FILE.read_text())["deployments"]}


# --- deploy/prefect.yaml ---------------------------------------------------------------------

def test_prefect_reads_the_file_as_written():
    from prefect.cli.deploy._models import PrefectYamlModel, RawScheduleConfig

    raw = yaml.safe_load(PREFECT_FILE.read_text())
    model = PrefectYamlModel.model_validate(raw)
    assert [d.name for d in model.deployments] == ["retrain-dcgan-digits", "monitor-dcgan-digits"]
    assert model.pull == [{"prefect.deployments.steps.set_working_directory": {"directory": "{{ $GENLOOP_ROOT }}"}}]
    for d in model.deployments:
        assert d.work_pool.name == "genloop" and d.work_pool.job_variables["env"]["BENTOML_HOME"] == \
            "{{ $GENLOOP_ROOT }}/.genloop/bentoml"
        assert d.parameters["root"] == "{{ $GENLOOP_ROOT }}"
        assert [RawScheduleConfig.model_validate(s).cron for s in raw_schedules(raw, d.name)]


def raw_schedules(raw: dict, name: str) -> list[dict]:
    return next(d for d in raw["deployments"] if d["name"] == name)["schedules"]


def test_the_parameters_fit_the_flows_they_run():
    """Every parameter is one the flow takes, and the flow's required ones are all given."""
    import inspect

    from prefect.flows import load_flow_from_entrypoint

    for name, d in _deployments().items():
        flow = load_flow_from_entrypoint(d["entrypoint"])
        signature = inspect.signature(flow.fn)
        required = {p for p, v in signature.parameters.items() if v.default is inspect.Parameter.empty}
        assert set(d["parameters"]) <= set(signature.parameters), name
        assert required <= set(d["parameters"]), name
        assert (REPO / d["parameters"]["config_path"]).is_file(), name


def test_the_drift_trigger_listens_for_what_the_monitor_emits():
    from prefect.cli.deploy._triggers import _initialize_deployment_triggers
    from prefect.events import DeploymentEventTrigger

    from flows.monitoring import DRIFT_EVENT

    retrain = _deployments()["retrain-dcgan-digits"]
    model = yaml.safe_load((REPO / retrain["parameters"]["config_path"]).read_text())["name"]
    (trigger,) = _initialize_deployment_triggers(retrain["name"], copy.deepcopy(retrain["triggers"]))
    assert isinstance(trigger, DeploymentEventTrigger)
    assert trigger.expect == {DRIFT_EVENT} and trigger.posture == "Reactive" and trigger.threshold == 1
    # flows/monitoring.py emits resource genloop.model.<the config's name>
    assert trigger.match.model_dump()["prefect.resource.id"] == f"genloop.model.{model}"
    # the server merges these over the deployment's parameters: only the event's data version
    assert trigger.parameters == {"data_rev": "{{ event.payload.data_rev | default('') }}"}
    # the monitor runs the same model and config
    monitor = _deployments()["monitor-dcgan-digits"]["parameters"]
    assert (monitor["model_name"], monitor["config_path"]) == (model, retrain["parameters"]["config_path"])


@pytest.mark.parametrize("breakage, message", [
    (lambda d: d["deployments"][0].pop("entrypoint"), "has no `entrypoint`"),
    (lambda d: d["deployments"][0].__setitem__("entrypoint", "flows.trainingg.retrain"), "is not importable"),
    (lambda d: d["deployments"][1].pop("work_pool"), "has no `work_pool: name:`"),
    (lambda d: d["deployments"][1].__setitem__("name", "retrain-dcgan-digits"), "two deployments are named"),
    (lambda d: d.__setitem__("deployments", []), "no `deployments:` list"),
], ids=["no-entrypoint", "bad-module", "no-pool", "duplicate-name", "no-deployments"])
def test_a_broken_prefect_file_is_named(tmp_path, breakage, message):
    doc = yaml.safe_load(PREFECT_FILE.read_text())
    breakage(doc)
    path = tmp_path / "prefect.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(GenloopError, match=message):
        read_prefect_file(path)


def _genloop_deploy(args: list[str], env_update: dict, drop=("PREFECT_API_URL",)) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return subprocess.run([*GENLOOP, "deploy", *args], cwd=REPO, env={**env, **env_update},
                          capture_output=True, text=True, timeout=120)


def test_genloop_deploy_says_what_is_wrong_in_one_line(tmp_path):
    bad = tmp_path / "prefect.yaml"
    bad.write_text("deployments:\n  - name: x\n    entrypoint: [unclosed\n")
    cases = [([], {}, "PREFECT_API_URL is not set: start one with `prefect server start`"),
             ([], {"PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api"}, "does not answer (ConnectError)"),
             (["--prefect-file", str(bad)], {}, f"{bad} line 4 is not valid YAML"),
             (["--prefect-file", str(tmp_path / "none.yaml")], {}, "no prefect.yaml at")]
    for args, env, expected in cases:
        out = _genloop_deploy(args, env)
        assert out.returncode == 1, out.stdout + out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], out.stderr


# --- deploy/k8s/prefect-work-pool.json ---------------------------------------------------------

def _template() -> dict:
    return json.loads(WORK_POOL.read_text())


def _render(template: dict, **values) -> dict:
    """The Job the Kubernetes worker would create: the template's variables (defaults, then
    `values`) put into job_manifest with Prefect's templating, then the worker's own fix-ups
    (env as a list of name/value, the command split into args)."""
    from prefect.utilities.templating import apply_values

    variables = {k: v["default"] for k, v in template["variables"]["properties"].items() if "default" in v}
    variables.update({"name": "genloop-retrain-abc", "labels": {"prefect.io/flow-run-id": "1234"},
                      "env": {"PREFECT_API_URL": "http://prefect-server:4200/api",
                              "BENTOML_HOME": "/opt/genloop/.genloop/bentoml"},
                      "command": "prefect flow-run execute"}, **values)
    job = apply_values(copy.deepcopy(template["job_configuration"]["job_manifest"]), variables)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    container["env"] = [{"name": k, "value": v} for k, v in container["env"].items()]
    container["args"] = shlex.split(container["args"])
    return job


def _kubernetes_view(job: dict) -> dict:
    job = copy.deepcopy(job)
    for quirk in POD_SPEC_QUIRKS:
        assert job["spec"]["template"]["spec"].pop(quirk) == 1
    return job


def test_the_prefect_server_accepts_the_template():
    from prefect.server.schemas.actions import WorkPoolCreate

    pool = WorkPoolCreate(name="genloop-k8s", type="kubernetes", base_job_template=_template())
    assert pool.base_job_template["job_configuration"]["job_manifest"]["kind"] == "Job"
    variables = _template()["variables"]
    jsonschema.Draft202012Validator.check_schema(variables)
    defaults = {k: v["default"] for k, v in variables["properties"].items() if "default" in v}
    jsonschema.validate(defaults, variables)
    with pytest.raises(ValueError, match="undeclared variable.*priority_class"):       # the server's own check
        broken = _template()
        broken["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]["priorityClassName"] = \
            "{{ priority_class }}"
        WorkPoolCreate(name="broken", type="kubernetes", base_job_template=broken)


def _worker_objections(job: dict) -> list[dict]:
    """The worker's check of a rendered manifest: nothing of its base missing or changed."""
    return [op for op in jsonpatch.JsonPatch.from_diff(job, WORKER_BASE_MANIFEST) if op["op"] in ("add", "replace")]


def test_the_kubernetes_worker_accepts_the_job():
    assert _worker_objections(_render(_template())) == []
    without = _render(_template())
    del without["spec"]["template"]["spec"]["parallelism"]      # what strict Kubernetes would rather have
    assert [op["path"] for op in _worker_objections(without)] == ["/spec/template/spec/parallelism"]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_rendered_job_validates_strictly(version):
    job = _kubernetes_view(_render(_template()))
    try:
        assert kubernetes_validate.validate(job, version, strict=True) == version.rsplit(".", 1)[0]
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"Job at {'.'.join(map(str, exc.path))}: {exc.message}")
    # the worker's quirk fields are what strict validation would object to, and nothing else
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(_render(_template()), version, strict=True)
    assert kubernetes_validate.validate(_render(_template()), version, strict=False)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["prefect", "flow-run", "execute"]
    assert {"name": "BENTOML_HOME", "value": "/opt/genloop/.genloop/bentoml"} in container["env"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts[container["workingDir"]] == "project"
    (volume,) = job["spec"]["template"]["spec"]["volumes"]
    assert volume["persistentVolumeClaim"]["claimName"] == "genloop-project"


@pytest.mark.parametrize("breakage, strict_only", [
    (lambda t: t["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"].__setitem__("cpu", ["2"]),
     False),
    (lambda t: t["spec"].__setitem__("backoffLimit", "zero"), False),
    (lambda t: t["spec"]["template"]["spec"]["containers"][0].__setitem__("workingdir", "/opt/genloop"), True),
    (lambda t: t["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"].__setitem__("claim", "x"),
     True),
], ids=["cpu-list", "backoff-string", "unknown-container-field", "unknown-claim-field"])
def test_a_broken_copy_fails_validation(breakage, strict_only):
    broken = _template()
    breakage(broken["job_configuration"]["job_manifest"])
    job = _kubernetes_view(_render(broken))
    for version in KUBERNETES_VERSIONS:
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(job, version, strict=True)
        if strict_only:
            assert kubernetes_validate.validate(job, version, strict=False)
        else:
            with pytest.raises(kubernetes_validate.ValidationError):
                kubernetes_validate.validate(job, version, strict=False)


def test_a_variable_of_the_wrong_type_breaks_the_job():
    """A work pool default or job variable of the wrong type reaches the Job: validation sees it."""
    job = _kubernetes_view(_render(_template(), run_as_user="root"))
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, KUBERNETES_VERSIONS[-1], strict=True)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"run_as_user": "root"}, _template()["variables"])
