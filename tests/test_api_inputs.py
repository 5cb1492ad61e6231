"""Bad input through the Python API: every method checks its measurements against the physics
(shape, dtype, finiteness) before any work, with one-line ConfigErrors (docs/bad_inputs.md,
"Python API")."""

import pytest
import torch

from generative_encoder.errors import ConfigError
from generative_encoder.io.checkpoints import load_model
from generative_encoder.methods import METHODS
from generative_encoder.physics import make_physics
from generative_encoder.solve import SolveConfig

# the methods that take a denoising task (every one but the deblurring, super-resolution,
# inpainting and compressed-sensing baselines, checked below with their own task)
TASK_OF = {
    "wiener": "deblur",
    "richardson_lucy": "deblur",
    "bicubic": "superres",
    "biharmonic": "inpaint",
    "lasso_dct": "cs",
    "sparse_dct": "inpaint",
}
PARAMS = {"cs": {"m": 50}, "superres": {"factor": 2}}


@pytest.fixture(scope="module")
def models(tiny_model_dir, began_dir):
    return {"tiny": load_model(tiny_model_dir), "began": load_model(began_dir)}


def _method(name, models):
    model = models["began" if name in ("ge0", "aegan", "lvr", "lvr_sa") else "tiny"]
    options = {"steps": 2} if name in ("ge", "ge0", "csgm", "yeh", "lvr", "lvr_sa") else {}
    return model, METHODS.build(name, model=model, **options)


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_refuses_measurements_that_do_not_fit(name, models):
    model, method = _method(name, models)
    task = TASK_OF.get(name, "denoise")
    physics = make_physics(task, model.image_shape, **PARAMS.get(task, {}))
    y = physics(torch.rand(2, *model.image_shape))
    bad = {
        "of another shape": (y[..., :-2], "measurements y must be"),
        "without a batch axis": (y[0], "measurements y must be"),
        "of integers": ((y * 255).to(torch.uint8), "must be floating point"),
        "all NaN": (torch.full_like(y, float("nan")), "contain NaN or Inf"),
        "empty": (y[:0], "hold no problem"),
        "a list": (y.tolist(), "must be a torch.Tensor"),
    }
    for label, (value, message) in bad.items():
        with pytest.raises(ConfigError, match=message):
            method(value, physics)


def test_a_half_size_image_is_refused_for_a_full_size_denoising_physics():
    physics = make_physics("denoise", (1, 28, 28), sigma=0.1)
    with pytest.raises(
        ConfigError,
        match=r"must be \(B, 1, 28, 28\) for this physics, got "
        r"\(2, 1, 14, 14\)",
    ):
        METHODS.build("bm3d")(torch.rand(2, 1, 14, 14), physics)


def test_non_finite_options_are_refused(models):
    model = models["tiny"]
    for options, message in (
        ({"lr": float("inf")}, "lr must be finite, got inf"),
        ({"latent_weight": float("nan")}, "latent_weight must be finite, got nan"),
        ({"early_stop_tol": float("nan")}, "early_stop_tol must be finite"),
    ):
        with pytest.raises(ConfigError, match=message):
            METHODS.build("ge", model=model, **options)
    with pytest.raises(ConfigError, match="lr must be finite"):
        SolveConfig(lr=float("inf"))
    with pytest.raises(ConfigError, match="blur_sigma must be finite, got inf"):
        make_physics("deblur", model.image_shape, blur_sigma=float("inf"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_device_this_machine_lacks_is_a_one_line_error(tiny_model_dir):
    with pytest.raises(ConfigError, match="device 'cuda' is not available"):
        make_physics("denoise", (1, 28, 28), device="cuda")
    with pytest.raises(ConfigError, match="device 'cuda:1' is not available"):
        load_model(tiny_model_dir, device="cuda:1")
