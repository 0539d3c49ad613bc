"""components/serving/lowering.py: small convolution stacks as matrix products, equal to the
convolutions to float rounding."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from components.data.images import to_uint8
from components.models import build_model
from components.serving.lowering import DenseStack, convolutions_rendering, lower_for_serving, lower_stack


def _model(family, size):
    torch.manual_seed(0)
    args = {"image_size": size, "channels": 1, "num_classes": 10, "z_dim": 16}
    m = build_model(family, {**args, "width": 32} if family == "dcgan" else args)
    for module in m.modules().values():
        for sub in module.modules():                       # BatchNorm statistics that are not 0/1
            if isinstance(sub, nn.BatchNorm2d):
                sub.running_mean.uniform_(-0.5, 0.5)
                sub.running_var.uniform_(0.5, 2.0)
        module.eval()
    return m


@pytest.mark.parametrize("family, size", [("dcgan", 8), ("vae", 8), ("dcgan", 28)])
def test_a_lowered_model_renders_what_the_convolutions_render(family, size):
    m = _model(family, size)
    lowered = copy.deepcopy(m)
    count = lower_for_serving(lowered)
    assert count >= 1
    net = lowered.generator.net if family == "dcgan" else lowered.decoder.net
    assert isinstance(net, DenseStack) and net.lowered == count
    if size == 28:                                         # the later, larger layers stay convolutions
        assert any(isinstance(layer, nn.ConvTranspose2d) for layer in net.rest)
    for batch in (1, 7):
        z, labels = m.latents(batch, 3)
        want, got = m.render(z, labels), lowered.render(z, labels)
        assert got.shape == want.shape
        assert torch.allclose(got, want, atol=1e-5)
        diff = (to_uint8(got).int() - to_uint8(want).int()).abs()
        assert diff.max() <= 1 and (diff > 0).float().mean() < 0.01


def test_conv2d_batch_norm_and_flatten_lower_too():
    torch.manual_seed(1)
    stack = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.LeakyReLU(0.2),
                          nn.Conv2d(8, 4, 3, 1, 1, bias=False), nn.BatchNorm2d(4, affine=False), nn.Tanh(),
                          nn.Flatten(), nn.Linear(4 * 4 * 4, 5))
    for bn in (stack[1], stack[4]):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    stack.eval()
    dense = lower_stack(stack, (3, 8, 8)).eval()
    assert dense.lowered == 2 and isinstance(dense.rest[0], nn.Linear)       # the Linear runs as it was
    x = torch.randn(6, 3, 8, 8)
    assert torch.allclose(dense(x), stack(x), atol=1e-5)


def test_what_does_not_qualify_stays_as_it_was():
    big = nn.Sequential(nn.ConvTranspose2d(64, 64, 4, 2, 1), nn.ReLU())
    assert lower_stack(big, (64, 32, 32)) is None              # a 65536 x 262144 matrix: no
    grouped = nn.Sequential(nn.Conv2d(4, 4, 3, 1, 1, groups=2))
    assert lower_stack(grouped, (4, 4, 4)) is None
    leading = nn.Sequential(nn.ReLU(), nn.Conv2d(4, 4, 3, 1, 1))
    assert lower_stack(leading, (4, 4, 4)) is None
    mixed = nn.Sequential(nn.ConvTranspose2d(16, 8, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(8, 8, 4, 2, 1),
                          nn.ReLU(), nn.ConvTranspose2d(8, 8, 4, 2, 1))
    mixed.eval()
    dense = lower_stack(mixed, (16, 2, 2)).eval()
    assert dense.lowered >= 1 and len(dense.rest) >= 1
    x = torch.randn(3, 16, 2, 2)
    assert torch.allclose(dense(x), mixed(x), atol=1e-5)


def test_a_lowered_stack_refuses_training():
    dense = lower_stack(nn.Sequential(nn.Conv2d(1, 2, 3, 1, 1)), (1, 4, 4))
    dense.train()
    with pytest.raises(RuntimeError, match="cannot be trained"):
        dense(torch.zeros(1, 1, 4, 4))


def test_the_serving_config_lowers_or_leaves_the_model():
    from components.serving.engine import describe, make_engine
    from components.serving.limits import ServingConfig
    from components.errors import GenloopError

    plain, lowered = _model("dcgan", 8), _model("dcgan", 8)
    kept = make_engine(plain, ServingConfig(lower_convs=0, onednn_min_rows=0))
    done = make_engine(lowered, ServingConfig(onednn_min_rows=0))
    assert isinstance(plain.generator.net, nn.Sequential) and kept.lowered_convs == 0
    assert isinstance(lowered.generator.net, DenseStack) and done.lowered_convs == 2
    assert "2 convolution(s) as matrix products" in describe(done, ServingConfig())
    assert "matrix products" not in describe(kept, ServingConfig())
    # nothing left to run through oneDNN: no measurement, torch's default
    assert convolutions_rendering(lowered) == 0 and convolutions_rendering(plain) == 2
    assert make_engine(_model("dcgan", 8), ServingConfig()).onednn_min_rows == 0
    large = _model("dcgan", 28)
    lower_for_serving(large)
    assert convolutions_rendering(large) >= 1
    assert ServingConfig.resolve({"lower_convs": 1}, {"GENLOOP_LOWER_CONVS": "0"}).lower_convs == 0
    with pytest.raises(GenloopError, match="lower_convs must be 1"):
        ServingConfig.resolve({"lower_convs": 2}, {})
