import pytest

from components.config import load_config
from components.errors import GenloopError
from tests.conftest import REPO


def test_default_configs_load(tmp_path):
    cfg = load_config("configs/dcgan-digits.yaml")
    assert cfg.model.family == "dcgan" and cfg.data.kind == "image" and len(cfg.data.labels) == 10
    text = load_config("configs/charlm-pydocs.yaml")
    assert text.model.family == "charlm" and text.data.kind == "text"


def test_unknown_top_level_key_names_key_and_valid_ones(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nepochs: 3\n")
    with pytest.raises(GenloopError) as err:
        load_config(path)
    assert "'epochs'" in str(err.value) and "train" in str(err.value) and "seed" in str(err.value)


def test_unknown_nested_key_names_section(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  stepz: 3\n")
    with pytest.raises(GenloopError, match=r"'train.stepz'.*steps, batch_size"):
        load_config(path)


def test_wrong_type_and_bad_values(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  steps: many\n")
    with pytest.raises(GenloopError, match="train.steps' must be a int"):
        load_config(path)
    path.write_text("train:\n  steps: 0\n")
    with pytest.raises(GenloopError, match="train.steps must be > 0"):
        load_config(path)


def test_overrides_and_missing_file(tmp_path):
    cfg = load_config("configs/dcgan-digits.yaml", {"train.steps": 7, "seed": 3})
    assert cfg.train.steps == 7 and cfg.seed == 3
    with pytest.raises(GenloopError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_unknown_model_arg_is_an_error():
    from components.models import build_model

    with pytest.raises(GenloopError, match="model.args.depth"):
        build_model("dcgan", {"depth": 3})
    with pytest.raises(GenloopError, match="unknown model.family 'vae2'"):
        build_model("vae2", {})


@pytest.mark.parametrize("path", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_every_config_in_configs_loads(path):
    cfg = load_config(REPO / "configs" / path)
    assert cfg.name == path.removesuffix(".yaml")
    if cfg.data.kind == "image":
        assert cfg.model.args["image_size"] == cfg.data.image_size and len(cfg.data.labels) == 10


def test_dataset_may_be_a_split_folder_and_must_stay_under_data(tmp_path):
    cfg = load_config(REPO / "configs" / "dcgan-fashion.yaml")
    assert cfg.data.dataset == "fashion-mnist/train" and cfg.evaluate.reference_dataset == "fashion-mnist/test"
    assert load_config(REPO / "configs" / "dcgan-digits.yaml").evaluate.reference_dataset == ""
    for bad in ("../elsewhere", "/abs/path", "fashion-mnist/../../x", ".hidden", "", "a\\b"):
        with pytest.raises(GenloopError, match="data.dataset must name a folder under data/"):
            load_config(REPO / "configs" / "dcgan-digits.yaml", {"data.dataset": bad})
    with pytest.raises(GenloopError, match="evaluate.reference_dataset must name a folder under data/"):
        load_config(REPO / "configs" / "dcgan-fashion.yaml", {"evaluate.reference_dataset": "../test"})
    with pytest.raises(GenloopError, match="evaluate.reference_dataset .* is for images"):
        load_config(REPO / "configs" / "charlm-stdlib.yaml", {"evaluate.reference_dataset": "pydocs"})
