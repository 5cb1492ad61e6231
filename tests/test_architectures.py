"""Generator and encoder architectures beyond DCGAN and GE1: BEGAN (and its encoder GE0), the
progressive GAN, the VAE encoder and the AEGAN baseline; each trains, saves and loads, and works
with every solving method it applies to."""

import csv
import math

import pytest
import torch
import torch.nn.functional as F

from generative_encoder.apps.restore import task_physics
from generative_encoder.cli import main
from generative_encoder.data import get_dataset
from generative_encoder.errors import ConfigError
from generative_encoder.io.checkpoints import ModelBundle, load_model, load_network, save_network
from generative_encoder.methods import METHODS
from generative_encoder.methods.latent import select_autoencoder
from generative_encoder.models.pgan import (
    EqualizedConv2d,
    EqualizedLinear,
    MinibatchStdDev,
    pixel_norm,
)
from generative_encoder.models.registry import build_network
from generative_encoder.physics import lift, make_physics
from generative_encoder.training import EncoderConfig, GANConfig, train_encoder, train_gan
from generative_encoder.training.encoder import vae_loss
from generative_encoder.training.objectives import (
    convergence_measure,
    equilibrium_step,
    pgan_schedule,
)

TINY = dict(batch_size=8, latent_dim=8, width=8, latent_dist="uniform", sample_every=100)
TINY_ENCODER = dict(
    steps=2, batch_size=8, code_dim=8, width=4, eval_every=2, checkpoint_every=2, n_eval=16
)


@pytest.fixture(scope="module")
def digits():
    return get_dataset("mnist5k", "train"), get_dataset("mnist5k", "test")


@pytest.fixture(scope="module")
def pgan_dir(tmp_path_factory, digits):
    """A progressive GAN grown 7 -> 14 -> 28 px (one step per phase) with a conv encoder."""
    out = tmp_path_factory.mktemp("pgan")
    train_gan(
        digits[0], out, GANConfig(arch="pgan", steps=6, phase_steps=1, checkpoint_every=6, **TINY)
    )
    train_encoder(*digits, out, EncoderConfig(**TINY_ENCODER))
    return out


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


# --- BEGAN and GE0 --------------------------------------------------------------------------------


def test_equilibrium_update_and_convergence_measure():
    assert equilibrium_step(0.5, 0.2, 0.05, gamma=0.5, lambda_k=0.1) == pytest.approx(0.505)
    assert equilibrium_step(0.999, 1.0, 0.0, gamma=0.5, lambda_k=0.1) == 1.0  # clipped above
    assert equilibrium_step(0.001, 0.0, 1.0, gamma=0.5, lambda_k=0.1) == 0.0  # and below
    assert convergence_measure(0.2, 0.05, gamma=0.5) == pytest.approx(0.25)
    assert convergence_measure(0.2, 0.15, gamma=0.5) == pytest.approx(0.25)


def test_began_log_follows_the_update_rule(began_dir):
    rows = _rows(began_dir / "gan_log.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    k, clipped = 0.0, 0
    for r in rows:
        l_real, l_fake = float(r["l_real"]), float(r["l_fake"])
        clipped += not 0 <= k + 2.0 * (0.5 * l_real - l_fake) <= 1
        k = equilibrium_step(k, l_real, l_fake, gamma=0.5, lambda_k=2.0)
        assert float(r["k"]) == pytest.approx(k, abs=1e-12) and 0 <= k <= 1
        assert float(r["m_global"]) == pytest.approx(l_real + abs(0.5 * l_real - l_fake))
    assert clipped  # lambda_k = 2 drives k to a bound of [0, 1] within 4 steps


def test_began_discriminator_logit_is_minus_the_energy(began_dir):
    D = load_model(began_dir).discriminator
    x = torch.rand(3, 1, 28, 28)
    error = (x - D.decoder(D.encoder(x))).abs()
    torch.testing.assert_close(D(x), -error.flatten(1).sum(1))
    torch.testing.assert_close(D.reconstruction_error(x), error.flatten(1).mean(1))
    G = load_model(began_dir).generator
    z = G.sample_latent(4)
    assert torch.equal(G(z), G(z, clamp=False).clamp(0, 1))  # linear output, clamped for use


def test_yeh_with_began_adds_the_energy(began_dir):
    model = load_model(began_dir)
    physics = make_physics("denoise", model.image_shape, sigma=0.1)
    y = physics(torch.rand(2, *model.image_shape))
    loss, _ = METHODS.build("yeh", model=model, disc_weight=0.3, steps=1).data_term(y, physics, 1)
    z = model.generator.sample_latent(2)
    x = model.generator(z)
    energy = (x - model.discriminator.reconstruct(x)).abs().flatten(1).sum(1)
    expected = (x - y).square().flatten(1).sum(1) + 0.3 * energy
    torch.testing.assert_close(loss(x, z), expected, rtol=1e-5, atol=1e-4)


def test_ge0_is_ge_with_the_began_encoder(began_dir):
    model = load_model(began_dir)
    physics = make_physics("inpaint", model.image_shape, mask="block")
    y = physics(torch.rand(2, *model.image_shape))
    a = METHODS.build("ge0", model=model, steps=3, restarts=1).solve(y, physics)
    b = METHODS.build("ge", model=model, steps=3, restarts=1, encoder="ge0").solve(y, physics)
    torch.testing.assert_close(a.z, b.z)
    c = METHODS.build("ge", model=model, steps=3, restarts=1).solve(y, physics)  # GE1
    assert not torch.allclose(a.objective, c.objective)
    loss, nets = METHODS.build("ge0", model=model).data_term(y, physics, 1)
    assert nets == [model.discriminator.encoder]


def test_encoder_cs_measures_the_named_family_and_methods_refuse_another_code(began_dir):
    model = load_model(began_dir)
    x = torch.rand(2, *model.image_shape)
    for family, method in [("ge0", "ge0"), ("aegan", "aegan"), ("ge1", "autoencoder")]:
        physics = task_physics("encoder_cs", model, {"encoder": family})
        encoder, decoder = select_autoencoder(model, family)
        torch.testing.assert_close(physics(x), encoder(x))
        if method == "ge0":  # GE0 matches BEGAN's own code: its objective at z is ||E(G(z)) - y||^2
            loss, nets = METHODS.build("ge0", model=model).data_term(physics(x), physics, 1)
            z = model.generator.sample_latent(2)
            expected = (encoder(model.generator(z)) - encoder(x)).square().sum(1)
            torch.testing.assert_close(loss(model.generator(z), z), expected)
        else:  # the baselines decode the family's own code
            torch.testing.assert_close(
                METHODS.build(method, model=model)(physics(x), physics),
                decoder(encoder(x)).clamp(0, 1),
            )
    ge1_code = task_physics("encoder_cs", model)
    for method in ("ge0", "aegan"):
        with pytest.raises(ConfigError, match="code of another encoder"):
            METHODS.build(method, model=model, **({"steps": 1} if method == "ge0" else {}))(
                ge1_code(x), ge1_code
            )
    with pytest.raises(ConfigError, match="encoder_cs's encoder is a family name"):
        task_physics("encoder_cs", model, {"encoder": torch.nn.Flatten()})


def test_ge0_needs_a_began_discriminator():
    G = build_network("dcgan_generator", latent_dim=4, width=4)
    D = build_network("dcgan_discriminator", width=4)
    info = {"image_size": 28, "channels": 1}
    with pytest.raises(
        ConfigError,
        match="encoder='ge0' is the encoder of a BEGAN discrimin.*'dcgan_discriminator'",
    ):
        METHODS.build("ge0", model=ModelBundle(info=info, generator=G, discriminator=D))
    with pytest.raises(
        ConfigError, match="encoder family must be one of ge1, vae, aegan, robust, ge0"
    ):
        METHODS.build("ge", model=ModelBundle(info=info, generator=G), encoder="ge2")


# --- progressive GAN ------------------------------------------------------------------------------


def test_pixel_norm_gives_unit_mean_square_per_pixel():
    x = torch.randn(2, 5, 3, 4) * 7
    torch.testing.assert_close(pixel_norm(x).square().mean(1), torch.ones(2, 3, 4))


def test_equalized_layers_scale_weights_by_he_constant():
    conv = EqualizedConv2d(3, 4, 3)
    torch.testing.assert_close(conv.effective_weight, conv.weight * math.sqrt(2 / 27))
    x = torch.randn(2, 3, 5, 5)
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight * math.sqrt(2 / 27), padding=1))
    assert abs(conv.weight.std().item() - 1) < 0.3  # stored weights are N(0, 1)
    lin = EqualizedLinear(10, 3, gain=1.0)
    torch.testing.assert_close(lin.effective_weight, lin.weight / math.sqrt(10))


def test_minibatch_std_channel_equals_the_hand_computed_std():
    layer = MinibatchStdDev()
    x = torch.randn(4, 3, 2, 2)
    out = layer(x)
    expected = torch.sqrt(((x - x.mean(0)) ** 2).mean(0) + 1e-8).mean()
    assert out.shape == (4, 4, 2, 2) and torch.equal(out[:, :3], x)
    torch.testing.assert_close(out[:, 3], expected.expand(4, 2, 2))
    torch.testing.assert_close(layer.running_std, 0.1 * expected)
    layer.eval()  # eval: the running value, one image alone scores as in any batch
    torch.testing.assert_close(layer(x[:1])[:, 3], (0.1 * expected).expand(1, 2, 2))


def test_schedule_grows_and_fades():
    assert [pgan_schedule(s, 2, 3) for s in range(12)] == [
        (0, 1.0),
        (0, 1.0),
        (1, 0.0),
        (1, 0.5),
        (1, 1.0),
        (1, 1.0),
        (2, 0.0),
        (2, 0.5),
        (2, 1.0),
        (2, 1.0),
        (2, 1.0),
        (2, 1.0),
    ]


def test_fade_in_blends_the_upsampled_old_stage_with_the_new_block():
    G = build_network("pgan_generator", latent_dim=6, image_size=32, width=4).double().eval()
    z = G.sample_latent(3).double()

    def at(stage, alpha):
        G.set_progress(stage, alpha)
        return G(z)

    old, new, half = at(1, 1.0), at(2, 1.0), at(2, 0.5)
    torch.testing.assert_close(at(2, 0.0), old)  # alpha 0: the old stage
    torch.testing.assert_close(torch.logit(half), 0.5 * torch.logit(old) + 0.5 * torch.logit(new))
    assert G.resolution == 16 and old.shape == (3, 1, 32, 32)
    # the discriminator: alpha 0 scores as the previous stage on the same images
    D = build_network("pgan_discriminator", image_size=32, width=4).double().eval()
    x = torch.rand(3, 1, 32, 32, dtype=torch.float64)
    D.set_progress(1, 1.0)
    previous = D(x)
    D.set_progress(2, 0.0)
    torch.testing.assert_close(D(x), previous)


def test_pgan_log_follows_the_schedule(pgan_dir):
    rows = _rows(pgan_dir / "gan_log.csv")
    assert [(int(r["resolution"]), float(r["alpha"])) for r in rows] == [
        (7, 1.0),
        (14, 0.0),
        (14, 1.0),
        (28, 0.0),
        (28, 1.0),
        (28, 1.0),
    ]
    G = load_model(pgan_dir).generator
    assert int(G.stage) == 2 and float(G.alpha) == 1.0


# --- VAE and AEGAN --------------------------------------------------------------------------------


def test_vae_encoder_is_the_posterior_mean_and_its_loss_the_elbo():
    E = build_network("vae_encoder", code_dim=5, width=4)
    Dec = build_network("conv_decoder", code_dim=5, width=4)
    x = torch.rand(3, 1, 28, 28)
    mu, logvar = E.posterior(x)
    assert torch.equal(E(x), mu) and torch.equal(E(x), E(x))
    eps = torch.randn(3, 5)
    recon = Dec(mu + torch.exp(logvar / 2) * eps)
    bce = -(x * recon.log() + (1 - x) * (1 - recon).log()).sum()
    kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum()
    torch.testing.assert_close(vae_loss(E, Dec, x, eps, 0.5), (bce + 0.5 * kl) / 3)


def test_encoder_kinds_write_their_own_files(began_dir):
    model = load_model(began_dir)
    assert type(model.encoder).__name__ == "ConvEncoder"
    assert model.network("vae_encoder").arch == "vae_encoder"
    assert model.network("aegan_encoder").arch == "conv_encoder"
    assert model.info["code_dim"] == model.info["vae_code_dim"] == model.info["aegan_code_dim"] == 8
    for name in ("encoder", "vae", "aegan"):
        assert [int(r["step"]) for r in _rows(began_dir / f"{name}_log.csv")] == [1, 2]
    with pytest.raises(
        ConfigError, match="encoder family must be one of ge1, vae, aegan, robust, got 'pca'"
    ):
        EncoderConfig(kind="pca")


# --- saving and loading ---------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["began", "pgan"])
def test_resume_is_exact(digits, tmp_path, arch):
    """k_t (BEGAN) and stage/alpha (pGAN) are resumed with the weights."""
    tiny = dict(TINY, batch_size=4, width=4, phase_steps=1, lambda_k=0.1, arch=arch)
    train_gan(digits[0], tmp_path / "a", GANConfig(steps=4, checkpoint_every=2, **tiny))
    train_gan(digits[0], tmp_path / "b", GANConfig(steps=2, checkpoint_every=2, **tiny))
    train_gan(
        digits[0], tmp_path / "b", GANConfig(steps=4, checkpoint_every=2, **tiny), resume=True
    )
    a, b = load_model(tmp_path / "a"), load_model(tmp_path / "b")
    for name in ("generator", "discriminator"):
        for (key, ta), tb in zip(
            getattr(a, name).state_dict().items(), getattr(b, name).state_dict().values()
        ):
            assert torch.equal(ta, tb), (name, key)
    assert _rows(tmp_path / "a" / "gan_log.csv") == [
        dict(r, seconds=ra["seconds"])
        for r, ra in zip(
            _rows(tmp_path / "b" / "gan_log.csv"), _rows(tmp_path / "a" / "gan_log.csv")
        )
    ]


@pytest.mark.parametrize(
    "arch, kwargs",
    [
        ("began_generator", dict(latent_dim=4)),
        ("began_discriminator", dict(code_dim=4)),
        ("began_encoder", dict(code_dim=4)),
        ("vae_encoder", dict(code_dim=4)),
        ("pgan_generator", dict(latent_dim=4)),
        ("pgan_discriminator", {}),
    ],
)
def test_saved_and_reloaded_networks_give_identical_outputs(tmp_path, arch, kwargs):
    net = build_network(arch, image_size=32, width=4, **kwargs)
    if hasattr(net, "set_progress"):
        net.set_progress(1, 0.25)
        if hasattr(net, "mbstd"):
            net.mbstd.running_std.fill_(0.7)
    save_network(tmp_path, "net", net)
    again = load_network(tmp_path, "net")
    net.eval()
    inputs = torch.rand(2, 4) if "generator" in arch else torch.rand(2, 1, 32, 32)
    assert torch.equal(net(inputs), again(inputs))


# --- every (architecture, method) pair ------------------------------------------------------------

LATENT_METHODS = [
    ("ge", {}),
    ("csgm", {}),
    ("yeh", {}),
    ("lvr", {}),
    ("ge0", {}),
    ("ge", {"encoder": "vae"}),
    ("ge", {"encoder": "aegan"}),
]
DIRECT_METHODS = [
    ("autoencoder", {}),
    ("autoencoder", {"encoder": "ge0"}),
    ("autoencoder", {"encoder": "vae"}),
    ("aegan", {}),
]


def _pairs(methods):
    """Every method on BEGAN (whose folder holds every encoder kind); on the progressive GAN
    those that do not need GE0 (BEGAN's) or another encoder kind than GE1 (any G would do)."""
    return [("began", m, o) for m, o in methods] + [
        ("pgan", m, o) for m, o in methods if m not in ("ge0", "aegan") and "encoder" not in o
    ]


@pytest.fixture(scope="module")
def models(began_dir, pgan_dir):
    return {"began": load_model(began_dir), "pgan": load_model(pgan_dir)}


@pytest.fixture(scope="module")
def problem(models):
    physics = make_physics("inpaint", (1, 28, 28), mask="block")
    return physics, physics(get_dataset("mnist5k", "test")[0][0][None].repeat(2, 1, 1, 1))


@pytest.mark.parametrize("arch, method, options", _pairs(LATENT_METHODS))
def test_latent_method_with_arch(models, problem, arch, method, options):
    model, (physics, y) = models[arch], problem
    solver = METHODS.build(method, model=model, steps=2, restarts=2, **options)
    result = solver.solve(y, physics)
    with torch.no_grad():  # the generator's image, before the consistency step
        torch.testing.assert_close(result.generated, model.generator(result.z))
    assert torch.equal(result.objective, result.restart_objective.min(1).values)
    assert torch.isfinite(result.objective).all()


@pytest.mark.parametrize("arch", ["began", "pgan"])
def test_lvr_sa_with_arch(models, problem, arch, tmp_path):
    model, (physics, y) = models[arch], problem
    method = METHODS.build(
        "lvr_sa",
        model=model,
        steps=2,
        restarts=1,
        sigma=0.1,
        n_attribute=2,
        cache=str(tmp_path),
        consistency="none",
    )
    x_hat = method(y, physics)
    z, s = method.solve(y, physics).z, method.sharpness_attribute(0.1)
    with torch.no_grad():
        torch.testing.assert_close(x_hat, model.generator((z + s).clamp(-1, 1)))


@pytest.mark.parametrize("arch, method, options", _pairs(DIRECT_METHODS))
def test_direct_method_with_arch(models, problem, arch, method, options):
    model, (physics, y) = models[arch], problem
    kind = options.get("encoder", "aegan" if method == "aegan" else "ge1")
    if kind == "ge0":
        encoder, decoder = model.discriminator.encoder, model.discriminator.decoder
    else:
        prefix = {"ge1": "", "vae": "vae_", "aegan": "aegan_"}[kind]
        encoder, decoder = model.network(prefix + "encoder"), model.network(prefix + "decoder")
    with torch.no_grad():
        expected = decoder(encoder(lift(y, physics))).clamp(0, 1)
    torch.testing.assert_close(METHODS.build(method, model=model, **options)(y, physics), expected)


# --- the command line -----------------------------------------------------------------------------


def test_cli_trains_began_then_a_vae_encoder(tmp_path, capsys):
    out = str(tmp_path / "m")
    tiny = ["--steps", "2", "--batch-size", "4", "--seed", "1"]
    assert (
        main(
            [
                "train",
                "gan",
                "--arch",
                "began",
                "--out",
                out,
                "--latent-dim",
                "4",
                "--width",
                "4",
                "--gamma",
                "0.7",
                "--checkpoint-every",
                "2",
                *tiny,
            ]
        )
        == 0
    )
    assert (
        main(
            ["train", "encoder", "--kind", "vae", "--model", out, "--m", "4", "--width", "4", *tiny]
            + ["--regressor-steps", "3", "--regressor-hidden", "8"]
        )
        == 0
    )
    model = load_model(out)
    assert model.info["gan_arch"] == "began" and model.network("vae_encoder") is not None
    assert model.network("vae_regressor").kwargs["code_dim"] == 4  # amortized GE's R
    assert "vae encoder m=4" in capsys.readouterr().out
    assert (
        main(
            [
                "train",
                "encoder",
                "--kind",
                "vae",
                "--model",
                out,
                "--m",
                "4",
                "--width",
                "4",
                *tiny,
                "--resume",
            ]
        )
        == 0
    )  # finished: a rerun of a pipeline script does nothing
    assert (
        "vae encoder in " + out + " already has 2 steps; nothing to do" in capsys.readouterr().out
    )
    assert main(["train", "gan", "--arch", "stylegan", "--out", out]) == 2
    assert (
        "unknown GAN architecture 'stylegan'; known: dcgan, began, pgan" in capsys.readouterr().err
    )
