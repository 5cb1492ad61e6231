"""Plug-and-play's denoiser (``genc train denoiser``), the ``pnp`` and ``dip`` methods."""

import shutil

import pytest
import torch
from deepinv.optim import L2
from deepinv.physics import Blur

from generative_encoder.data import get_dataset, stack_images
from generative_encoder.errors import ConfigError
from generative_encoder.io.checkpoints import ModelBundle, load_model, load_network
from generative_encoder.methods import METHODS
from generative_encoder.methods.pnp import DPIR_SIGMA_START, dpir_schedule
from generative_encoder.physics import make_physics
from generative_encoder.training.denoiser import DenoiserConfig, train_denoiser

TINY = dict(width=8, blocks=1, batch_size=16, eval_every=50, checkpoint_every=50, n_eval=32)


@pytest.fixture(scope="module")
def digits():
    return stack_images(get_dataset("mnist5k", "test"), range(6))


@pytest.fixture(scope="module")
def denoiser_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model plus a denoiser trained for 200 steps."""
    out = tmp_path_factory.mktemp("pnp") / "model"
    shutil.copytree(tiny_model_dir, out)
    train = get_dataset("mnist5k", "train")
    config = DenoiserConfig(steps=200, **TINY)
    train_denoiser(train, get_dataset("mnist5k", "test"), out, config, overwrite=True)
    return out


def _psnr(x, ref):
    return float((-10 * torch.log10((x - ref).square().flatten(1).mean(1))).mean())


def test_the_trained_denoiser_lowers_the_noise_of_held_out_digits(denoiser_dir, digits):
    D = load_model(denoiser_dir).network("denoiser")
    noise = torch.randn(digits.shape, generator=torch.Generator().manual_seed(0))
    noisy = digits + 0.3 * noise
    with torch.no_grad():
        denoised = D(noisy, 0.3)
    assert _psnr(denoised, digits) > _psnr(noisy, digits) + 3  # about 10.5 dB -> 15 dB and more


def test_denoiser_training_resumes_bit_identically_and_refuses_to_overwrite(
    tiny_model_dir, tmp_path
):
    train, test = get_dataset("mnist5k", "train"), get_dataset("mnist5k", "test")
    runs = {}
    for name in ("straight", "resumed"):
        runs[name] = tmp_path / name
        shutil.copytree(tiny_model_dir, runs[name], ignore=shutil.ignore_patterns("denoiser*"))
    small = TINY | dict(checkpoint_every=3, eval_every=3, n_eval=8, batch_size=4)
    train_denoiser(train, test, runs["straight"], DenoiserConfig(steps=6, **small))

    class Killed(Exception):
        pass

    def kill_at_3(step, logs):
        if step == 3:
            raise Killed

    with pytest.raises(Killed):  # a run killed right after its checkpoint at step 3
        train_denoiser(
            train, test, runs["resumed"], DenoiserConfig(steps=6, **small), on_step=kill_at_3
        )
    train_denoiser(train, test, runs["resumed"], DenoiserConfig(steps=6, **small), resume=True)
    a, b = (load_network(runs[n], "denoiser").state_dict() for n in ("straight", "resumed"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ConfigError, match="already holds a trained run"):
        train_denoiser(train, test, runs["straight"], DenoiserConfig(steps=6, **small))


def test_dpir_schedule_falls_from_49_over_255_to_the_noise_level():
    levels, steps = dpir_schedule(0.05, 8)
    assert levels[0] == pytest.approx(DPIR_SIGMA_START) and levels[-1] == pytest.approx(0.05)
    assert all(a > b for a, b in zip(levels, levels[1:]))
    assert steps[-1] == pytest.approx(1 / 0.23)  # the last data step has DPIR's weight
    # a noise level above DPIR's start: the denoiser runs at it throughout; none: a floor
    assert dpir_schedule(0.4, 3)[0] == pytest.approx([0.4] * 3)
    assert dpir_schedule(0.0, 3)[0][-1] == pytest.approx(0.01)


class _Identity(torch.nn.Module):
    def forward(self, x, sigma, **kwargs):
        return x


def test_pnp_with_an_identity_denoiser_is_its_data_step(tiny_model_dir, digits):
    """One HQS iteration with D = identity is the data step alone: the x minimising
    gamma/2 ||A x - y||^2 + 1/2 ||x - x0||^2 from x0 = A^T y (here solved by deepinv's generic
    conjugate gradient on the blur, where the method uses the FFT), clamped to [0, 1]."""
    model = load_model(tiny_model_dir)
    bundle = ModelBundle(
        info=model.info, generator=model.generator, extras={"denoiser": _Identity()}
    )
    physics = make_physics("deblur", model.image_shape, blur_sigma=1.5, sigma=0.05)
    assert isinstance(physics, Blur)
    y = physics(digits)
    x = METHODS.build("pnp", model=bundle, iterations=1)(y, physics)
    gamma = dpir_schedule(0.05, 1)[1][0]
    data_step = L2().prox(physics.A_adjoint(y), y, physics, gamma=gamma).clamp(0, 1)
    torch.testing.assert_close(x, data_step, atol=5e-3, rtol=0)
    assert (x - y.clamp(0, 1)).abs().max() > 0.05  # the step did move the image


@pytest.mark.parametrize(
    "task, params",
    [
        ("denoise", {"sigma": 0.2}),
        ("inpaint", {"mask": "block"}),
        ("deblur", {"blur_sigma": 1.5, "sigma": 0.01}),
        ("superres", {"factor": 2}),
    ],
)
def test_pnp_beats_its_start_and_gives_an_image_alone_what_it_gives_in_a_batch(
    denoiser_dir, digits, task, params
):
    model = load_model(denoiser_dir)
    physics = make_physics(task, model.image_shape, seed=2, **params)
    y = physics(digits)
    pnp = METHODS.build("pnp", model=model)
    x = pnp(y, physics)
    assert x.shape == digits.shape and 0 <= x.min() and x.max() <= 1
    torch.testing.assert_close(pnp(y[3:4], physics), x[3:4], atol=1e-6, rtol=0)
    if task == "denoise":  # the plain measurement is the start here
        assert _psnr(x, digits) > _psnr(y.clamp(0, 1), digits) + 2


def test_pnp_needs_a_denoiser_and_a_linear_physics(uniform_model_dir, denoiser_dir, digits):
    from generative_encoder.errors import CheckpointError

    with pytest.raises(CheckpointError, match="has no denoiser"):
        METHODS.build("pnp", model=load_model(uniform_model_dir))
    model = load_model(denoiser_dir)
    physics = make_physics("encoder_cs", model.image_shape, encoder=model.encoder)
    with pytest.raises(ConfigError, match="needs a linear physics"):
        METHODS.build("pnp", model=model)(physics(digits), physics)
    with pytest.raises(ConfigError, match="iterations must be >= 1"):
        METHODS.build("pnp", model=model, iterations=0)


def test_dip_stops_at_the_noise_level_by_the_discrepancy_principle(digits):
    """With a known noise std the returned iterate is the first checked one whose residual
    ||A x - y||^2 / m is within sigma^2: the clean image is never an input."""
    sigma = 0.1
    physics = make_physics("denoise", (1, 28, 28), seed=3, sigma=sigma)
    y = physics(digits[:3])
    dip = METHODS.build("dip", iterations=400, channels=16, layers=3, check_every=5)
    x = dip(y, physics, seeds=[1, 2, 3])
    residual = (x - y).square().flatten(1).mean(1)
    stops = torch.tensor(dip.last_stop)
    assert (stops < 400).all() and (stops % 5 == 0).all()  # stopped at a check
    # the iterate reached sigma^2; clamping it to [0, 1] moves it a little off y's noise
    assert (residual > 0.8 * sigma**2).all() and (residual < 1.2 * sigma**2).all()
    assert _psnr(x, digits[:3]) > _psnr(y, digits[:3])


def test_dip_problems_that_stopped_leave_the_batch_without_changing_the_others(digits):
    """Problems stop at different checks; each stopped one leaves the batch (its weights and
    Adam state dropped), and every problem still gets what it gets alone."""
    physics = make_physics("denoise", (1, 28, 28), seed=3, sigma=0.1)
    y = physics(digits[:4])
    dip = METHODS.build("dip", iterations=400, channels=16, layers=3, check_every=5)
    batch = dip(y, physics, seeds=[1, 2, 3, 4])
    stops = dip.last_stop
    assert len(set(stops)) > 1 and max(stops) < 400  # rows left at different steps
    for i in (0, 3):
        alone = dip(y[i : i + 1], physics, seeds=[i + 1])
        assert dip.last_stop == [stops[i]]
        torch.testing.assert_close(alone, batch[i : i + 1], atol=1e-5, rtol=0)


def test_dip_without_noise_keeps_the_iterate_best_on_held_out_entries(digits):
    physics = make_physics("inpaint", (1, 28, 28), seed=3, mask="block")
    y = physics(digits[:2])
    dip = METHODS.build("dip", iterations=60, channels=16, layers=3, check_every=20)
    x = dip(y, physics, seeds=[5, 6])
    assert set(dip.last_stop) <= {1, 20, 40, 60}
    misfit = (x - y).square().mul(physics.mask).sum() / physics.mask.sum() / len(y)
    assert misfit < 0.25 * y.square().mean()  # it fits the measured pixels


def test_dip_gives_an_image_alone_what_it_gives_in_a_batch(digits):
    physics = make_physics("superres", (1, 28, 28), seed=4, factor=2)
    y = physics(digits[:4])
    dip = METHODS.build("dip", iterations=15, channels=8, layers=3, check_every=5)
    batch = dip(y, physics, seeds=[10, 11, 12, 13])
    alone = dip(y[2:3], physics, seeds=[12])
    torch.testing.assert_close(alone, batch[2:3], atol=1e-5, rtol=0)
    with pytest.raises(ConfigError, match="one seed per problem"):
        dip(y, physics, seeds=[1])
    with pytest.raises(ConfigError, match="channels must be an integer >= 1"):
        METHODS.build("dip", channels=0)


def test_genc_train_denoiser_adds_a_denoiser_to_a_model_folder(tiny_model_dir, tmp_path, capsys):
    from generative_encoder.cli import main

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder, ignore=shutil.ignore_patterns("denoiser*"))
    argv = ["train", "denoiser", "--model", str(folder), "--steps", "2", "--batch-size", "2"]
    assert main(argv + ["--width", "4", "--blocks", "1"]) == 0
    assert "dB on held-out images at noise 0.1" in capsys.readouterr().out
    D = load_model(folder).network("denoiser")
    assert D.kwargs == {"channels": 1, "image_size": 28, "width": 4, "blocks": 1}
    assert main(argv) == 2  # a second run without --resume or --overwrite is refused
    assert "already holds a trained run" in capsys.readouterr().err
