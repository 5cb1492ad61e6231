"""DiffAugment transforms of GAN training, and the ``refine`` and ``hidden`` options of the DCGAN
nets."""

import pytest
import torch

from generative_encoder.errors import ConfigError
from generative_encoder.io.checkpoints import load_network, save_network
from generative_encoder.models.registry import build_network
from generative_encoder.training import GANConfig
from generative_encoder.training.augment import augment, cutout, parse_augment, translation


def test_translation_moves_a_pixel_by_at_most_the_ratio():
    x = torch.zeros(64, 1, 8, 8)
    x[:, 0, 4, 4] = 1
    t = translation(x, torch.Generator().manual_seed(0), ratio=0.25)  # shifts up to 2 px
    pos = t[:, 0].flatten(1).argmax(1)
    rows, cols = pos // 8, pos % 8
    assert t.sum() == 64  # every impulse stays inside the image
    assert (rows - 4).abs().max() <= 2 and (cols - 4).abs().max() <= 2
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 5  # shifts differ between images


def test_translation_fills_with_zeros():
    t = translation(torch.ones(256, 1, 8, 8), torch.Generator().manual_seed(1), ratio=0.25)
    zero_rows = (t[:, 0] == 0).all(dim=2).sum(1)  # rows shifted in from outside
    assert zero_rows.max() == 2 and zero_rows.min() == 0


def test_cutout_zeroes_one_square_per_image():
    x = torch.ones(32, 2, 8, 8)
    c = cutout(x, torch.Generator().manual_seed(0), ratio=0.5)
    assert torch.equal(c[:, 0], c[:, 1])  # the same square in every channel
    zeros = (c[:, 0] == 0).flatten(1).sum(1)
    assert zeros.max() == 16 and zeros.min() >= 4  # 4 x 4, clipped at the border at worst
    assert set(c.unique().tolist()) == {0.0, 1.0}


def test_augment_is_differentiable_and_empty_is_identity():
    x = torch.rand(4, 1, 8, 8, requires_grad=True)
    g = torch.Generator().manual_seed(0)
    assert augment(x, (), g) is x
    augment(x, parse_augment("translation,cutout"), g).sum().backward()
    assert x.grad is not None and 0 < x.grad.sum() < x.numel()


def test_unknown_augmentation_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown augmentation"):
        parse_augment("translation,rotate")
    with pytest.raises(ConfigError, match="unknown augmentation"):
        GANConfig(augment="flip")


def test_refine_adds_layers_and_round_trips(tmp_path):
    plain = build_network("dcgan_generator", latent_dim=8, width=8, refine=0)
    refined = build_network("dcgan_generator", latent_dim=8, width=8, refine=1)
    n = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert n(refined) == n(plain) + 16 * 16 * 9 + 2 * 16 + 8 * 8 * 9 + 2 * 8  # 7x7 and 14x14 convs
    save_network(tmp_path, "generator", refined.eval())
    loaded = load_network(tmp_path, "generator")
    z = torch.randn(3, 8)
    assert torch.equal(loaded(z), refined(z))
    with pytest.raises(ConfigError):
        build_network("dcgan_discriminator", width=8, refine=-1)


def test_hidden_adds_one_fully_connected_layer_and_round_trips(tmp_path):
    plain_g = build_network("dcgan_generator", latent_dim=8, width=8)
    hidden_g = build_network("dcgan_generator", latent_dim=8, width=8, hidden=32)
    plain_d = build_network("dcgan_discriminator", width=8)
    hidden_d = build_network("dcgan_discriminator", width=8, hidden=32)
    n = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    stem = 16 * 7 * 7  # the first map of a width-8, 28 px generator
    # G: z -> 32 (+ BatchNorm) -> map instead of z -> map
    assert n(hidden_g) - n(plain_g) == 8 * 32 + 2 * 32 + 32 * stem - 8 * stem
    # D: features -> 32 -> logit instead of features -> logit
    assert n(hidden_d) - n(plain_d) == stem * 32 + 32 + 32 + 1 - (stem + 1)
    assert "hidden" not in plain_g.kwargs  # old checkpoints' JSON stays what it was
    for name, net in (("generator", hidden_g.eval()), ("discriminator", hidden_d.eval())):
        save_network(tmp_path, name, net)
    x = torch.rand(3, 1, 28, 28)
    z = torch.randn(3, 8)
    assert torch.equal(load_network(tmp_path, "generator")(z), hidden_g(z))
    assert torch.equal(load_network(tmp_path, "discriminator")(x), hidden_d(x))
