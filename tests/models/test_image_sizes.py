"""The image models at the sizes real datasets have: 28 (Fashion-MNIST, padded to a 32
lattice inside the model), 32 and 64 px, grey and RGB."""
import pytest
import torch

from components.errors import GenloopError
from components.models import build_model
from components.models.lattice import crop_to_image, network_size, pad_to_network


def test_lattice_pads_to_the_next_power_of_two_and_crops_back():
    assert [network_size(s) for s in (8, 9, 28, 32, 33, 64)] == [8, 16, 32, 32, 64, 64]
    x = torch.rand(2, 3, 28, 28) * 2 - 1
    padded = pad_to_network(x, 28)
    assert padded.shape == (2, 3, 32, 32) and torch.equal(crop_to_image(padded, 28), x)
    assert (padded[:, :, :2] == -1).all() and (padded[:, :, :, -2:] == -1).all()      # black border
    y = torch.rand(1, 1, 32, 32)
    assert pad_to_network(y, 32) is y and crop_to_image(y, 32) is y
    odd = pad_to_network(torch.zeros(1, 1, 27, 27), 27)
    assert odd.shape[-1] == 32 and torch.equal(crop_to_image(odd, 27), torch.zeros(1, 1, 27, 27))


@pytest.mark.parametrize("family", ["dcgan", "vae"])
def test_image_side_below_eight_is_a_clear_error(family):
    with pytest.raises(GenloopError, match="image_size must be >= 8, got 4"):
        build_model(family, {"image_size": 4})


def _step_is_finite(model, x, labels):
    before = {k: v.clone() for m in model.modules().values() for k, v in m.state_dict().items()}
    losses = model.train_step((x, labels), model.make_optimizers(1e-3), grad_clip=1.0)
    assert losses and all(torch.isfinite(v).all() for v in losses.values())
    after = {k: v for m in model.modules().values() for k, v in m.state_dict().items()}
    assert any(not torch.equal(before[k], after[k]) for k in before)                   # it learned something
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())


@pytest.mark.parametrize("family, extra", [("dcgan", {"z_dim": 16, "spectral_norm": True}),
                                           ("vae", {"z_dim": 8, "beta": 0.25})])
@pytest.mark.parametrize("size, channels", [(28, 1), (32, 1), (32, 3), (64, 3)])
def test_models_build_sample_and_step_at_real_sizes(family, extra, size, channels):
    torch.manual_seed(0)
    model = build_model(family, {"image_size": size, "channels": channels, "num_classes": 10, "width": 64, **extra})
    images, labels = model.sample(5, seed=1)
    assert images.shape == (5, channels, size, size) and labels.shape == (5,)
    assert images.min() >= -1 and images.max() <= 1
    assert torch.equal(images, model.sample(5, seed=1)[0])
    x = torch.rand(6, channels, size, size) * 2 - 1
    _step_is_finite(model, x, torch.arange(6) % 10)


def test_stage_count_and_widths_follow_the_side():
    """From 2x2 to the side: one stride-2 stage per doubling; the generator starts at
    `width` channels and the discriminator ends at it, at every side."""
    for size, stages in ((8, 2), (28, 4), (32, 4), (64, 5)):
        model = build_model("dcgan", {"image_size": size, "width": 256})
        up = [m for m in model.generator.net if isinstance(m, torch.nn.ConvTranspose2d)]
        down = [m for m in model.discriminator.net if isinstance(m, torch.nn.Conv2d)]
        assert len(up) == len(down) == stages
        assert up[0].in_channels == 256 and down[-1].out_channels == 256
        assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.generator.net) == stages - 1
        vae = build_model("vae", {"image_size": size, "width": 256})
        assert len([m for m in vae.encoder.net if isinstance(m, torch.nn.Conv2d)]) == stages


def test_vae_reconstructs_at_the_data_size():
    model = build_model("vae", {"image_size": 28, "z_dim": 4, "width": 32})
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    losses = model.loss((x, torch.tensor([0, 1, 2])))
    assert torch.isfinite(losses["loss"]) and losses["recon"] > 0
    assert model.interpolate(4, label=2, images=x[:2]).shape == (4, 1, 28, 28)
