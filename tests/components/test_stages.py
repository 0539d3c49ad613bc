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
    assert stored.metadata["trained_classes"] == [str(d) for d in range(10)]
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


def test_a_champion_from_other_data_is_rescored_before_the_gate_compares(chain, data_project, tmp_path):
    """The chain's champion was scored on all ten digits; a run on digits 0-4 only (another
    dataset md5) re-scores it on its own reference, the way it scored itself, and compares
    like with like. With gate.rescore_champion off the gate refuses the comparison."""
    import shutil

    import numpy as np

    from components.evaluation.fid import feature_stats, frechet_distance
    from components.registry import champion_summary
    from tests.conftest import make_project

    root = make_project(tmp_path / "v1")
    for digit in "01234":
        shutil.copytree(data_project / "data" / "digits" / digit, root / "data" / "digits" / digit)
    champion = champion_summary("stages-dcgan")
    overrides = {**TINY_DCGAN, "name": "stages-dcgan", "package": False}
    ctx = prepare_run(root, "configs/dcgan-digits.yaml", overrides)
    assert ctx.dataset_md5 != chain["ctx"].dataset_md5
    trained = stages.train(ctx, stages.augment(ctx))
    evaluated, audited = stages.evaluate(ctx, trained), stages.audit(ctx, trained)
    gated = stages.gate(ctx, evaluated, audited)
    assert gated.champion.tag == champion.tag and gated.champion.dataset_md5 == ctx.dataset_md5
    reference = np.load(next(ctx.paths.fid_cache.glob(f"{ctx.dataset_md5}-*-{TINY_DCGAN['evaluate.samples']}.npz")))
    fake = np.load(champion.path / "generated_features.npy").astype(np.float64)
    assert gated.champion.value == pytest.approx(frechet_distance(*feature_stats(fake), reference["mu"],
                                                                  reference["sigma"]), rel=1e-9)
    assert gated.champion.value != pytest.approx(chain["evaluate"].value)
    assert f"champion {champion.tag} re-scored this run's way (dataset md5" in gated.reason
    assert "not comparable" not in gated.reason
    saved = json.loads((ctx.run_dir / "gate.json").read_text())
    assert saved["champion_at_promotion"]["dataset_md5"] == chain["ctx"].dataset_md5
    assert saved["champion"]["value"] == pytest.approx(gated.champion.value)

    strict = dataclasses.replace(ctx, config=dataclasses.replace(
        ctx.config, gate=dataclasses.replace(ctx.config.gate, rescore_champion=False)))
    refused = stages.gate(strict, evaluated, audited)
    assert not refused.promote and "not comparable" in refused.reason and "re-scored" not in refused.reason


def test_the_gate_with_the_seed_spread_switch_reads_what_a_sweep_recorded(chain, data_project):
    """gate.use_seed_spread: no record is a clear error; with one, the margin covers training
    noise and gate.json says so (the chain's own champion, compared with itself, is kept)."""
    from components.errors import GenloopError
    from components.gate import SeedSpread
    from components.sweep import save_spread, spread_path

    ctx = chain["ctx"]
    switched = dataclasses.replace(ctx, config=dataclasses.replace(
        ctx.config, gate=dataclasses.replace(ctx.config.gate, use_seed_spread=True)))
    spread_path(data_project, "stages-dcgan").unlink(missing_ok=True)
    with pytest.raises(GenloopError, match="no seed spread has been measured for 'stages-dcgan'"):
        stages.gate(switched, chain["evaluate"], chain["audit"])
    save_spread(data_project, "stages-dcgan", SeedSpread("fid", 4.0, 5, ctx.dataset_md5, {}, "sweep-test"))
    gated = stages.gate(switched, chain["evaluate"], chain["audit"])
    assert not gated.promote and "training noise (seed half-width 7.84 = 1.96 x sd 4 over 5 seeds)" in gated.reason
    assert gated.challenger.seed_runs == 5
    assert gated.reason.startswith("seed spread sd 4 over 5 runs from sweep-test. ")
    recorded = json.loads((ctx.run_dir / "gate.json").read_text())
    assert recorded["seed_spread"]["source"] == "sweep-test" and recorded["challenger"]["seed_sd"] == 4.0
    other = SeedSpread("fid", 4.0, 5, ctx.dataset_md5, {"samples": 99999, "reference_samples": 24}, "sweep-other")
    with pytest.raises(GenloopError, match="sweep-other was measured with another evaluation protocol"):
        stages.gate(switched, chain["evaluate"], chain["audit"], other)
    assert not stages.gate(ctx, chain["evaluate"], chain["audit"], other).promote   # switch off: not checked, not used
