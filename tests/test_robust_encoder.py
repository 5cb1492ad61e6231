"""The degradation-aware encoder family ``robust`` (``genc train encoder --kind robust
--degradations ...``) and its use by GE (``encoder=robust``)."""

import shutil

import pytest
import torch
from torch.utils.data import Subset

from generative_encoder.apps.restore import task_physics
from generative_encoder.cli import main
from generative_encoder.data import get_dataset, stack_images
from generative_encoder.errors import CheckpointError, ConfigError
from generative_encoder.io.checkpoints import load_model, load_tensors, quantizer_name, read_json
from generative_encoder.methods import METHODS
from generative_encoder.methods.latent import amortized_latent, select_autoencoder
from generative_encoder.models.families import EXTRA_NETWORK_NAMES, family
from generative_encoder.physics import lift, make_physics
from generative_encoder.training import EncoderConfig, train_encoder
from generative_encoder.training.codec import fit_codec
from generative_encoder.training.encoder import DEGRADATIONS, degrade
from generative_encoder.training.regressor import RegressorConfig, train_regressor

TINY = dict(code_dim=32, width=8, batch_size=16, eval_every=100, n_eval=32, kind="robust")


@pytest.fixture(scope="module")
def splits():
    return get_dataset("mnist5k", "train"), get_dataset("mnist5k", "test")


def _copy(tiny_model_dir, tmp_path, name):
    folder = tmp_path / name
    shutil.copytree(tiny_model_dir, folder)
    return folder


def _weights(folder):
    return {
        name: load_tensors(folder / f"robust_{name}.safetensors") for name in ("encoder", "decoder")
    }


def _assert_equal(a, b):
    for name in a:
        assert a[name].keys() == b[name].keys()
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), (name, key)


def test_robust_is_a_family_of_its_own_files():
    f = family("robust", trainable=True)
    assert (f.encoder, f.decoder, f.regressor, f.prefix) == (
        "robust_encoder",
        "robust_decoder",
        "robust_regressor",
        "robust_",
    )
    assert {"robust_encoder", "robust_decoder", "robust_regressor"} <= set(EXTRA_NETWORK_NAMES)


def test_training_writes_robust_files_and_leaves_the_plain_encoder(
    tiny_model_dir, tmp_path, splits
):
    folder = _copy(tiny_model_dir, tmp_path, "m")
    plain = {n: (folder / f"{n}.safetensors").read_bytes() for n in ("encoder", "decoder")}
    logs = train_encoder(*splits, folder, EncoderConfig(steps=4, degradations=DEGRADATIONS, **TINY))
    assert {n: (folder / f"{n}.safetensors").read_bytes() for n in ("encoder", "decoder")} == plain
    model = load_model(folder)
    robust, _ = select_autoencoder(model, "robust")
    assert robust is model.network("robust_encoder") and robust is not model.encoder
    assert read_json(folder / "robust_encoder.json")["meta"]["degradations"] == list(DEGRADATIONS)
    assert logs["mse_degraded_test"] > logs["mse_real_test"] > 0
    header = (folder / "robust_log.csv").read_text().splitlines()[0]
    assert "mse_degraded_test" in header


def test_same_seed_same_weights_and_resume_equals_a_straight_run(tiny_model_dir, tmp_path, splits):
    config = EncoderConfig(steps=6, degradations=("denoise", "inpaint", "superres"), **TINY)
    runs = {name: _copy(tiny_model_dir, tmp_path, name) for name in ("a", "b", "c")}
    for name in ("a", "b"):
        train_encoder(*splits, runs[name], config)
    _assert_equal(_weights(runs["a"]), _weights(runs["b"]))
    short = EncoderConfig(
        steps=3, degradations=("denoise", "inpaint", "superres"), checkpoint_every=3, **TINY
    )
    train_encoder(*splits, runs["c"], short)
    halfway = _weights(runs["c"])
    train_encoder(*splits, runs["c"], config, resume=True)
    _assert_equal(_weights(runs["a"]), _weights(runs["c"]))
    first = next(iter(halfway["encoder"]))
    assert not torch.equal(halfway["encoder"][first], _weights(runs["c"])["encoder"][first])


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(kind="robust", degradations=("colorize",)), "must be among denoise, deblur"),
        (dict(kind="robust", degradations=("nosuchtask",)), "must be among denoise, deblur"),
        (dict(kind="robust", degradations=("denoise", "denoise")), "twice"),
        (dict(kind="robust"), "needs degradations"),
        (dict(kind="ge1", degradations=("denoise",)), "use kind 'robust'"),
        (dict(kind="robust", degradations=("denoise",), code_weight=-1.0), "code_weight"),
    ],
)
def test_bad_degradations_are_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        EncoderConfig(**options)


def test_cli_refuses_degradations_of_the_plain_kind(tiny_model_dir, tmp_path, capsys):
    folder = _copy(tiny_model_dir, tmp_path, "m")
    args = ["train", "encoder", "--data", "mnist5k", "--model", str(folder), "--steps", "1"]
    assert main(args + ["--degradations", "denoise,deblur"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "use kind 'robust'" in err
    assert main(args + ["--kind", "robust", "--degradations", "denoise,quantize"]) == 2
    assert "got 'quantize'" in capsys.readouterr().err
    assert not (folder / "robust_encoder.safetensors").exists()


def test_degrade_is_ge_lift_of_the_measurement_and_seeded():
    x = stack_images(get_dataset("mnist5k", "train"), range(16))
    a = degrade(x, DEGRADATIONS, torch.Generator().manual_seed(5))
    b = degrade(x, DEGRADATIONS, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert not torch.equal(a, degrade(x, DEGRADATIONS, torch.Generator().manual_seed(6)))
    clean = (a == x).flatten(1).all(1)
    assert int(clean.sum()) == 4  # a quarter of the batch stays clean
    # one task, no clean images: every image differs; superres-only images are bicubic lifts
    up = degrade(x, ("superres",), torch.Generator().manual_seed(0), clean_fraction=0)
    assert not (up == x).flatten(1).all(1).any()
    lifts = []
    for factor in (2, 4):
        physics = make_physics("superres", tuple(x.shape[1:]), factor=factor)
        lifts.append(lift(physics.A(x), physics))  # noiseless: superres's sigma is 0
    assert all(
        any(torch.allclose(up[i], lifted[i], atol=1e-5) for lifted in lifts) for i in range(16)
    )
    assert any(torch.allclose(up[i], lifts[0][i], atol=1e-5) for i in range(16))
    assert any(torch.allclose(up[i], lifts[1][i], atol=1e-5) for i in range(16))


def _relative_code_gap(encoder, x, degraded):
    """mean ||E(S(x)) - E(x)||^2 over mean ||E(x_i) - E(x_j)||^2: scale-free."""
    with torch.no_grad():
        clean, noisy = encoder(x), encoder(degraded)
    spread = (clean - clean.roll(1, 0)).square().sum(1).mean()
    return float((noisy - clean).square().sum(1).mean() / spread)


def test_robust_codes_of_degraded_images_stay_near_the_clean_codes(
    tiny_model_dir, tmp_path, splits
):
    folder = _copy(tiny_model_dir, tmp_path, "m")
    train_encoder(
        *splits,
        folder,
        EncoderConfig(steps=200, degradations=("denoise", "inpaint"), checkpoint_every=200, **TINY),
    )
    model = load_model(folder)
    x = stack_images(splits[0], range(1000, 1128))
    degraded = degrade(x, ("denoise", "inpaint"), torch.Generator().manual_seed(1), 0)
    plain = _relative_code_gap(model.encoder, x, degraded)
    robust = _relative_code_gap(model.network("robust_encoder"), x, degraded)
    assert robust < 0.7 * plain


def test_ge_solves_with_the_robust_encoder(tiny_model_dir, tmp_path, splits):
    folder = _copy(tiny_model_dir, tmp_path, "m")
    train_encoder(*splits, folder, EncoderConfig(steps=2, degradations=("denoise",), **TINY))
    model = load_model(folder)
    physics = task_physics("denoise", model, {"sigma": 0.3})
    x = stack_images(splits[0], range(2))
    y = physics(x)
    solved = {
        kind: METHODS.build("ge", model=model, encoder=kind, steps=5, restarts=1)(y, physics)
        for kind in ("ge1", "robust")
    }
    assert torch.isfinite(solved["robust"]).all()
    assert not torch.allclose(solved["robust"], solved["ge1"])
    with pytest.raises(CheckpointError, match="robust_regressor"):
        METHODS.build("ge", model=model, encoder="robust", start="amortized")


def test_the_robust_family_has_its_own_regressor_and_codec(tiny_model_dir, tmp_path, splits):
    folder = _copy(tiny_model_dir, tmp_path, "m")
    train_encoder(*splits, folder, EncoderConfig(steps=2, degradations=("deblur",), **TINY))
    train_regressor(folder, RegressorConfig(steps=2, hidden=16, batch_size=8), "robust")
    fit_codec(load_model(folder), Subset(splits[0], range(64)), "robust")
    assert (folder / "robust_regressor.safetensors").exists()
    assert quantizer_name("robust") == "robust_codec"
    assert (folder / "robust_codec.safetensors").exists()
    model = load_model(folder)
    x = stack_images(splits[0], range(2))
    physics = task_physics("deblur", model)
    y = physics(x)
    z = amortized_latent(model, "robust", y, physics)
    with torch.no_grad():
        by_hand = model.network("robust_regressor")(model.network("robust_encoder")(y))
    assert torch.allclose(z, by_hand, atol=1e-6)  # deblur's lift is the identity
    assert not torch.allclose(z, amortized_latent(model, "ge1", y, physics))
