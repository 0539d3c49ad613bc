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


@pytest.mark.parametrize("layer, shape", [
    (nn.ConvTranspose2d(6, 4, 3, 2, 1, output_padding=1), (6, 3, 3)),
    (nn.ConvTranspose2d(6, 4, 3, 1, 1, dilation=2), (6, 3, 5)),
    (nn.Conv2d(3, 5, (3, 2), (2, 1), (1, 0), dilation=(1, 2)), (3, 7, 6)),
    (nn.Conv2d(3, 5, 3, 1, 1, bias=False), (3, 4, 6)),
])
def test_strides_paddings_dilations_and_non_square_shapes_lower_exactly(layer, shape):
    torch.manual_seed(2)
    stack = nn.Sequential(layer, nn.ReLU()).eval()
    dense = lower_stack(stack, shape).eval()
    assert dense is not None and dense.lowered == 1
    x = torch.randn(4, *shape)
    assert dense(x).shape == stack(x).shape and torch.allclose(dense(x), stack(x), atol=1e-5)
    with pytest.raises(ValueError, match="lowered for inputs of shape"):
        dense(torch.randn(4, shape[0], shape[1] + 1, shape[2]))


class _Stacks(nn.Module):
    """A generator-like module for the tracing rules: an outer stack holding an inner one
    (also held directly), a stack run at two input sizes, and a stack run with a BatchNorm
    left in training mode."""

    def __init__(self):
        super().__init__()
        self.inner = nn.Sequential(nn.ConvTranspose2d(8, 8, 4, 2, 1), nn.ReLU())
        self.outer = nn.Sequential(nn.ConvTranspose2d(8, 8, 3, 1, 1), self.inner, nn.ReLU(),
                                   nn.ConvTranspose2d(8, 4, 4, 2, 1))
        self.twice = nn.Sequential(nn.Conv2d(4, 4, 3, 1, 1))
        self.training_bn = nn.Sequential(nn.Conv2d(4, 4, 3, 1, 1), nn.BatchNorm2d(4, momentum=0.0))  # stats kept

    def forward(self, z):
        h = self.outer(z.view(-1, 8, 2, 2))                       # (4, 8, 8)
        h = self.twice(h) + nn.functional.interpolate(self.twice(h[:, :, :4, :4]), scale_factor=2)
        return self.training_bn(h)


class _StacksModel:
    def __init__(self):
        torch.manual_seed(3)
        self.net = _Stacks().eval()
        self.net.training_bn[1].train()

    def modules(self):
        return {"net": self.net}

    def latents(self, n, seed):
        return torch.randn(n, 32, generator=torch.Generator().manual_seed(seed)), torch.zeros(n, dtype=torch.long)

    @torch.no_grad()
    def render(self, z, labels):
        return self.net(z)


def test_tracing_lowers_inner_stacks_first_and_skips_two_shapes_and_training_mode():
    m = _StacksModel()
    z, _ = m.latents(3, 0)
    m.net.training_bn[1].eval()
    want = m.net(z)
    m.net.training_bn[1].train()
    count = lower_for_serving(m)
    net = m.net
    # the inner stack first, in both places that hold it; then the outer's leading convolution,
    # the rest of the outer (the lowered inner, ...) kept behind it
    assert isinstance(net.inner, DenseStack) and isinstance(net.outer, DenseStack)
    assert net.outer.rest[0] is net.inner
    assert count == 2                                          # each lowered convolution counted once
    assert isinstance(net.twice, nn.Sequential)                # ran at 8x8 and 4x4: not lowered
    assert isinstance(net.training_bn, nn.Sequential)          # its BatchNorm was training: not lowered
    net.training_bn[1].eval()
    assert torch.allclose(net(z), want, atol=1e-5)


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


def test_requests_batched_by_a_lowered_engine_get_what_the_lowered_model_renders_alone():
    import asyncio

    from components.serving.engine import make_engine
    from components.serving.limits import ServingConfig

    m = _model("dcgan", 8)
    requests = [(1, 1, None, 1.0), (4, 2, 3, 0.7), (2, 3, torch.tensor([1, 9]), 1.0), (3, 4, None, 1.4)]

    async def run():
        engine = make_engine(m, ServingConfig())                # lowers m in place
        return await asyncio.gather(*(engine.submit(n, s, lab, t) for n, s, lab, t in requests))

    results = asyncio.run(run())
    assert isinstance(m.generator.net, DenseStack)
    for (n, seed, labels, temp), result in zip(requests, results):
        images, indices = m.sample(n, seed, labels=labels, temperature=temp)      # alone, lowered too
        assert result.indices == indices.tolist()
        diff = (result.images.int() - to_uint8(images).int()).abs()
        assert diff.max() <= 1 and (diff > 0).float().mean() < 0.01


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
