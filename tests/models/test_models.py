import pytest
import torch

from components.models import FAMILIES, build_model
from components.models.io import load_checkpoint, save_checkpoint


def test_dcgan_samples_shape_range_and_determinism():
    model = build_model("dcgan", {"z_dim": 8, "width": 16})
    images, labels = model.sample(6, seed=1, labels=4)
    assert images.shape == (6, 1, 8, 8) and images.min() >= -1 and images.max() <= 1
    assert labels.tolist() == [4] * 6
    again, _ = model.sample(6, seed=1, labels=4)
    assert torch.equal(images, again)


def test_dcgan_discriminator_learns_on_a_tiny_batch():
    torch.manual_seed(0)
    model = build_model("dcgan", {"z_dim": 8, "width": 16})
    opt = model.make_optimizers(1e-3)
    real = torch.rand(16, 1, 8, 8) * 2 - 1
    labels = torch.randint(0, 10, (16,))
    first = model.train_step((real, labels), opt)["d_loss"].item()
    for _ in range(30):
        last = model.train_step((real, labels), opt)["d_loss"].item()
    assert last < first


def test_charlm_loss_goes_down_and_samples_text():
    torch.manual_seed(0)
    model = build_model("charlm", {"block_size": 16, "d_model": 32, "n_layers": 1, "n_heads": 2,
                                   "dropout": 0.0})
    opt = model.make_optimizers(3e-3)
    rows = torch.tensor(list(b"hello world, hello world, hello!"[:17])).repeat(8, 1)
    batch = (rows[:, :-1], rows[:, 1:])
    first = model.train_step(batch, opt)["loss"].item()
    for _ in range(40):
        last = model.train_step(batch, opt)["loss"].item()
    assert last < first * 0.5
    texts = model.sample(2, seed=0, prompt="hel", max_new_tokens=5, top_k=5)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)


SMALL = {"dcgan": {"z_dim": 8, "width": 16}, "vae": {"z_dim": 4, "width": 16},
         "charlm": {"block_size": 16, "d_model": 32, "n_layers": 1},
         "lstm": {"block_size": 16, "d_model": 16, "hidden": 32, "n_layers": 1}, "ngram": {}}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_follows_the_written_interface(family):
    """The attributes models/base.py writes down, with values the rest of the code relies on."""
    from components.models import base

    model = build_model(family, SMALL[family])
    assert model.family == family and model.modality in ("image", "text")
    assert model.metric == {"image": "fid", "text": "perplexity"}[model.modality]
    assert isinstance(model.count_based, bool) and model.describe()["family"] == family
    protocol = base.CountedModel if model.count_based else base.TrainedModel
    sampler = base.ImageSampler if model.modality == "image" else base.TextSampler
    written = [c for p in (protocol, sampler) for c in p.__mro__ if c.__module__ == base.__name__]
    members = {m for cls in written for m in [*vars(cls), *cls.__dict__.get("__annotations__", {})]}
    assert {"family", "modality", "metric", "count_based", "save_weights", "sample"} <= members
    for member in sorted(m for m in members if not m.startswith("_")):
        assert hasattr(model, member), f"{family} lacks {member}"
    if not model.count_based:
        assert set(model.ema_modules) <= set(model.modules())
        if model.validates:
            assert callable(model.loss)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_checkpoint_round_trip(tmp_path, family):
    from components.data.text import encode

    model = build_model(family, SMALL[family])
    if model.count_based:
        model.fit(encode("abcabc, the quick brown fox " * 20))
    save_checkpoint(model, {"dataset_md5": "abc"}, tmp_path / "ckpt")
    loaded, meta = load_checkpoint(tmp_path / "ckpt")
    assert meta["dataset_md5"] == "abc" and meta["family"] == family
    if model.modality == "image":
        assert torch.equal(model.sample(3, seed=2)[0], loaded.sample(3, seed=2)[0])
    else:
        probe = encode("the quick").unsqueeze(0)
        assert torch.equal(model.logits(probe), loaded.logits(probe))
    for name, module in model.modules().items():
        for (k, a), (_, b) in zip(module.state_dict().items(), loaded.modules()[name].state_dict().items()):
            assert torch.equal(a, b), k


def test_truncated_weights_are_a_clear_error(tmp_path):
    from components.errors import GenloopError

    save_checkpoint(build_model("dcgan", SMALL["dcgan"]), {}, tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(GenloopError, match="unreadable or mismatched weights"):
        load_checkpoint(tmp_path / "ckpt")


def test_image_models_share_the_temperature_knob():
    for family in ("dcgan", "vae"):
        model = build_model(family, SMALL[family])
        cold, labels = model.sample(4, seed=3, labels=1, temperature=0.0)
        assert torch.allclose(cold[0], cold[1]) and labels.tolist() == [1] * 4   # no noise: one image
        warm, _ = model.sample(4, seed=3, labels=1, temperature=1.0)
        assert not torch.allclose(warm[0], warm[1])


def test_vae_elbo_goes_down_and_controls_work():
    torch.manual_seed(0)
    model = build_model("vae", {"z_dim": 4, "width": 16})
    opt = model.make_optimizers(2e-3)
    batch = (torch.rand(32, 1, 8, 8) * 2 - 1, torch.randint(0, 10, (32,)))
    first = model.train_step(batch, opt)["loss"].item()
    for _ in range(60):
        last = model.train_step(batch, opt)["loss"].item()
    assert last < first
    cold, labels = model.sample(8, seed=0, labels=2, temperature=0.0)
    assert cold.shape == (8, 1, 8, 8) and labels.tolist() == [2] * 8
    assert torch.allclose(cold[0], cold[1])                       # temperature 0: the prior mean
    line = model.interpolate(5, label=1, seeds=(0, 1))
    assert line.shape == (5, 1, 8, 8) and not torch.allclose(line[0], line[-1])
    ends = model.interpolate(3, label=1, images=batch[0][:2])
    assert ends.shape == (3, 1, 8, 8) and ends.min() >= -1 and ends.max() <= 1


def test_lstm_loss_goes_down():
    torch.manual_seed(0)
    model = build_model("lstm", {"block_size": 16, "d_model": 16, "hidden": 32, "n_layers": 1, "dropout": 0.0})
    opt = model.make_optimizers(1e-2)
    rows = torch.tensor(list(b"abcabcabcabcabcabc"[:17])).repeat(8, 1)
    first = model.train_step((rows[:, :-1], rows[:, 1:]), opt)["loss"].item()
    for _ in range(40):
        last = model.train_step((rows[:, :-1], rows[:, 1:]), opt)["loss"].item()
    assert last < first * 0.5
    assert len(model.sample(3, seed=1, prompt="ab", max_new_tokens=4, top_p=0.9)) == 3


def test_ngram_counts_predict_and_round_trip(tmp_path):
    from components.data.text import encode
    from components.evaluation.perplexity import corpus_perplexity

    model = build_model("ngram", {})
    model.fit(encode("abcabcabcabc" * 50))
    ppl = corpus_perplexity(model.logits, encode("abcabcabcabc" * 5), window=20)["perplexity"]
    assert ppl < 1.5                                               # 'c' always follows 'ab'
    save_checkpoint(model, {}, tmp_path / "ckpt")
    loaded, meta = load_checkpoint(tmp_path / "ckpt")
    assert meta["family"] == "ngram"
    assert torch.allclose(loaded.logits(encode("abca").unsqueeze(0)), model.logits(encode("abca").unsqueeze(0)))
    assert model.sample(2, seed=0, prompt="ab", max_new_tokens=3) == loaded.sample(2, seed=0, prompt="ab",
                                                                                  max_new_tokens=3)


def test_top_p_keeps_the_smallest_nucleus():
    from components.models.textgen import filter_logits

    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(filter_logits(logits, 1.0, 0, 0.75))
    assert kept.tolist() == [[True, True, False, False]]


@pytest.mark.slow
def test_families_satisfy_the_protocols_statically(tmp_path):
    """mypy checks each family against models/base.py, signatures included."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from components.models import FAMILIES

    checked = Path(__file__).with_name("protocol_conformance.py")
    assert all(f"{family}.Model" in checked.read_text() for family in FAMILIES)
    root = checked.parents[2]
    # MYPYPATH: mypy does not follow the editable install's import hook; without it the
    # imports would be missing and (an error here, not Any) the check would say so
    out = subprocess.run([sys.executable, "-m", "mypy", "--follow-imports=silent", "--cache-dir",
                          str(tmp_path / "mypy"), str(checked)], env={**os.environ, "MYPYPATH": str(root)},
                         cwd=root, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:]


def test_request_labels_keep_to_the_classes_the_model_was_trained_on():
    from components.models.base import request_labels

    names = [str(i) for i in range(10)]
    assert request_labels(4, 0, None, names, None) is None                 # trained on all: the model draws
    assert request_labels(4, 0, None, names, names) is None
    assert request_labels(4, 0, "7", names, None) == 7
    drawn = request_labels(500, 1, None, names, ["0", "1", "2", "3", "4"])
    assert set(drawn.tolist()) == {0, 1, 2, 3, 4}
    assert drawn.tolist() == request_labels(500, 1, None, names, ["0", "1", "2", "3", "4"]).tolist()
    with pytest.raises(ValueError, match="not in this model's training data; it was trained on 0, 1, 2, 3, 4"):
        request_labels(1, 0, "7", names, ["0", "1", "2", "3", "4"])
    with pytest.raises(ValueError, match="not a class of this model"):
        request_labels(1, 0, "x", names, None)
