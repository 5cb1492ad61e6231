import pytest
import torch

from generative_encoder.errors import ConfigError
from generative_encoder.models.autoencoders import default_encoder_depth
from generative_encoder.models.registry import NETWORKS, build_network


@pytest.mark.parametrize("size", [28, 32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_ranges(size, channels):
    G = build_network("dcgan_generator", latent_dim=8, channels=channels, image_size=size, width=8)
    D = build_network("dcgan_discriminator", channels=channels, image_size=size, width=8)
    E = build_network("conv_encoder", channels=channels, image_size=size, code_dim=12, width=4)
    Dec = build_network("conv_decoder", channels=channels, image_size=size, code_dim=12, width=4)
    x = G(G.sample_latent(3))
    assert x.shape == (3, channels, size, size)
    assert 0 <= x.min() and x.max() <= 1
    assert D(x).shape == (3,)
    code = E(x)
    assert code.shape == (3, 12)
    y = Dec(code)
    assert y.shape == (3, channels, size, size) and 0 <= y.min() and y.max() <= 1


def test_encoder_follows_table_1():
    E = build_network("conv_encoder", channels=3, image_size=64, code_dim=128, depth=4, width=16)
    convs = [m for m in E.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 32, 64, 128]  # f, 2f, 4f, 8f
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert E.fc.in_features == 128 * 4 * 4 and E.fc.out_features == 128
    assert default_encoder_depth(28) == 2 and default_encoder_depth(64) == 4


def test_reduced_decoder_is_smaller():
    full = build_network("conv_decoder", channels=1, image_size=32, code_dim=16, width=16)
    weak = build_network("conv_decoder", channels=1, image_size=32, code_dim=16, depth=1, width=4)
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(weak) < n(full) / 4
    assert weak(torch.zeros(2, 16)).shape == (2, 1, 32, 32)


def test_latent_distributions():
    G = build_network("dcgan_generator", latent_dim=1000, latent_dist="uniform", width=4)
    z = G.sample_latent(50, torch.Generator().manual_seed(0))
    assert z.min() >= -1 and z.max() <= 1 and abs(z.mean()) < 0.02
    zn = build_network("dcgan_generator", latent_dim=1000, width=4).sample_latent(50)
    assert abs(zn.std() - 1) < 0.02
    # deepinv's CSGMGenerator passes (N, nz, 1, 1) and reads .nz
    G.eval()
    assert torch.equal(G(z[:2, :, None, None]), G(z[:2])) and G.nz == 1000


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(image_size=30), "image_size must be one of"),
        (dict(channels=2), "channels must be 1 or 3"),
        (dict(latent_dist="cauchy"), "latent_dist must be one of"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        build_network("dcgan_generator", **kwargs)


def test_unknown_architecture_lists_known():
    with pytest.raises(ConfigError, match="known: .*dcgan_generator"):
        build_network("stylegan9")
    assert "conv_encoder" in NETWORKS
