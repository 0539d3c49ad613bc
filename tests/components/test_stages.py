"""Every stage called directly, without Prefect: a tiny DCGAN and the n-gram through
validate -> augment -> train -> evaluate -> audit -> gate -> package -> report."""
import dataclasses
import json
import pytest

from components import stages
from components.runs import RunContext, prepare_run
from tests.conftest import TINY_DCGAN

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chain(data_project) -> dict:
    """The stages in flow order, each result kept for the tests below."""
    ctx = prepare_run(data_project, "configs/dcgan-digits.yaml", {**TINY_DCGAN, "name": "stages-dcgan",
                                                                  "package": False})
    out = {"ctx": ctx, "validate": stages.validate(ctx), "augment": stages.augment(ctx)}
    out["train"] = stages.train(ctx, out["augment"])
    out["evaluate"] = stages.evaluate(ctx, out["train"])
    out["audit"] = stages.audit(ctx, out["train"])
    out["gate"] = stages.gate(ctx, out["evaluate"], out["audit"])
    out["package"] = stages.package(ctx, out["train"], out["evaluate"], out["audit"], out["gate"])
    out["report"] = stages.report(ctx, out["evaluate"], out["audit"], out["gate"])
    return out


def test_run_context_round_trips_through_run_json(chain):
    ctx = chain["ctx"]
    assert RunContext.load(ctx.run_dir) == ctx
    assert ctx.provenance()["data_md5"] == ctx.data.data_md5 and ctx.paths.root == ctx.root


def test_every_stage_reports_a_figure_its_files_and_seconds(chain):
    for name in ("validate", "augment", "train", "evaluate", "audit", "gate", "package", "report"):
        result = chain[name]
        assert result.figure and result.seconds > 0, name
        for path in result.files:
            assert (chain["ctx"].run_dir / path).exists(), (name, path)


def test_validate_and_augment(chain):
    assert json.loads(open(chain["validate"].report_json).read())["success"] is True
    plan = chain["augment"].plan
    assert plan.kind == "image" and plan.config == chain["ctx"].config.augment
    assert chain["augment"].files[0].endswith("augment_preview.png")


def test_train_evaluate_audit(chain):
    trained, evaluated = chain["train"], chain["evaluate"]
    assert trained.steps == TINY_DCGAN["train.steps"] and trained.device == "cpu"
    rank = json.loads((chain["ctx"].run_dir / "rank-0.json").read_text())
    assert rank["checkpoint"] == trained.checkpoint and rank["heldout_loss"] is None      # a GAN does not validate
    assert evaluated.metric == "fid" and evaluated.value == evaluated.metrics["fid"] > 0
    assert sum(1 for _ in open(evaluated.reference_csv)) == TINY_DCGAN["evaluate.samples"] + 1
    assert isinstance(chain["audit"].passed, bool) and len(chain["audit"].reasons) == 2


def test_gate_package_report(chain):
    from components.registry import champion_tag, get_model

    gated, packaged = chain["gate"], chain["package"]
    assert gated.promote and gated.champion is None and "no champion yet" in gated.reason
    assert packaged.bento_tag is None and champion_tag("stages-dcgan") == packaged.model_tag
    stored = get_model(packaged.model_tag)
    assert stored.metadata["scorecard"]["value"] == pytest.approx(chain["evaluate"].value)
    assert gated.reason in chain["report"].markdown


def test_a_failed_bento_build_promotes_nothing(chain, monkeypatch):
    import bentoml

    from components import registry
    from components.errors import GenloopError

    ctx, champion = chain["ctx"], chain["package"].model_tag
    before = {str(m.tag) for m in bentoml.models.list("stages-dcgan")}

    def broken(*args, **kwargs):
        raise GenloopError("bento build failed")

    monkeypatch.setattr(registry, "build_bento", broken)
    better = dataclasses.replace(chain["gate"], promote=True)
    packaging = dataclasses.replace(ctx, config=dataclasses.replace(ctx.config, package=True))
    with pytest.raises(GenloopError, match="bento build failed"):
        stages.package(packaging, chain["train"], chain["evaluate"], chain["audit"], better)
    assert registry.champion_tag("stages-dcgan") == champion
    assert {str(m.tag) for m in bentoml.models.list("stages-dcgan")} == before


def test_ngram_stages_count_and_evaluate(data_project):
    ctx = prepare_run(data_project, "configs/ngram-pydocs.yaml", {"evaluate.max_windows": 20,
                                                                 "name": "stages-ngram"})
    augmented = stages.augment(ctx)
    assert augmented.figure == "none: the model counts the whole training split" and not augmented.files
    trained = stages.train(ctx, augmented)
    assert trained.steps == 1
    evaluated = stages.evaluate(ctx, trained)
    assert evaluated.metric == "perplexity" and 1 < evaluated.value < 256
    assert evaluated.metrics["window"] == ctx.config.evaluate.window          # any length: no sequence limit


def test_a_champion_that_moved_since_the_gate_blocks_promotion(chain):
    """The gate compared with "no champion"; meanwhile another run promoted one (the chain's
    own package stage). Package builds the bento, then refuses to move the alias, and
    removes the model and the bento it made."""
    import bentoml

    from components import registry
    from components.errors import GenloopError

    ctx, champion = chain["ctx"], chain["package"].model_tag
    assert chain["gate"].champion is None and registry.champion_tag("stages-dcgan") == champion
    models = {str(m.tag) for m in bentoml.models.list("stages-dcgan")}
    bentos = {str(b.tag) for b in bentoml.bentos.list()}
    packaging = dataclasses.replace(ctx, config=dataclasses.replace(ctx.config, package=True))
    with pytest.raises(GenloopError, match="changed to .* while this run was gated against no champion"):
        stages.package(packaging, chain["train"], chain["evaluate"], chain["audit"], chain["gate"])
    assert registry.champion_tag("stages-dcgan") == champion
    assert {str(m.tag) for m in bentoml.models.list("stages-dcgan")} == models
    assert {str(b.tag) for b in bentoml.bentos.list()} == bentos


def test_a_run_dir_from_an_older_genloop_is_a_clear_error(tmp_path):
    from components.errors import GenloopError

    (tmp_path / "run.json").write_text(json.dumps({"run_id": "x", "config": {}, "data_md5": "m"}))
    with pytest.raises(GenloopError, match="older genloop"):
        RunContext.load(tmp_path)
