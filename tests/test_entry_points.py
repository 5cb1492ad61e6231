"""One path per method: ``genc restore``, ``genc bench`` and ``method(y, physics)`` give the same
images for every method of the registry (last steps such as Yeh's Poisson blend and LVR-SA's
sharpness shift included)."""

import json

import pytest
import torch

from generative_encoder.apps.restore import IMAGE_TASKS, simulate_each, task_physics
from generative_encoder.cli import main
from generative_encoder.data import get_dataset, stack_images
from generative_encoder.io.checkpoints import load_model, load_tensors
from generative_encoder.io.images import read_image, write_image
from generative_encoder.io.zoo import shipped_model
from generative_encoder.methods import METHODS
from generative_encoder.physics.seeds import LATENT_STREAM, NOISE_STREAM, image_seed, image_seeds

N_IMAGES = 3
LATENT = {"steps": 4}
# method -> (model: the shipped digits model, or a tiny BEGAN with every encoder kind and uniform
# latents), task, task parameters, method options
CASES = {
    "ge": ("shipped", "inpaint", {"mask": "block"}, LATENT),
    "ge0": ("began", "denoise", {"sigma": 0.1}, LATENT),
    "csgm": ("shipped", "superres", {"factor": 2}, LATENT | {"start": "amortized+prior"}),
    "autoencoder": ("shipped", "deblur", {}, {}),
    "amortized": ("shipped", "superres", {"factor": 2}, {}),
    "aegan": ("began", "denoise", {"sigma": 0.1}, {}),
    "yeh": ("shipped", "inpaint", {"mask": "block"}, LATENT | {"blend": True}),
    "lvr": ("began", "denoise", {"sigma": 0.1}, LATENT),
    "lvr_sa": ("began", "denoise", {"sigma": 0.1}, LATENT | {"n_attribute": 4}),
    "bm3d": ("shipped", "denoise", {"sigma": 0.1}, {}),
    "tv": ("shipped", "denoise", {"sigma": 0.1}, {}),
    "wiener": ("shipped", "deblur", {}, {}),
    "richardson_lucy": ("shipped", "deblur", {}, {}),
    "bicubic": ("shipped", "superres", {"factor": 2}, {}),
    "biharmonic": ("shipped", "inpaint", {"mask": "random"}, {}),
    "lasso_dct": ("shipped", "cs", {"m": 200}, {}),
    "sparse_dct": ("shipped", "inpaint", {"mask": "random"}, {}),
    "identity": ("shipped", "denoise", {"sigma": 0.1}, {}),
    "pnp": ("shipped", "deblur", {}, {}),
    "dip": ("shipped", "inpaint", {"mask": "block"}, {"iterations": 20, "check_every": 5}),
}


def test_every_registered_method_has_a_case():
    assert sorted(CASES) == METHODS.names()


def _uint8(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def _cli(*argv) -> None:
    assert main([str(a) for a in argv]) == 0


@pytest.mark.parametrize("name", sorted(CASES))
def test_restore_bench_and_call_give_the_same_images(name, began_dir, tmp_path):
    which, task, params, options = CASES[name]
    if name == "lvr_sa":
        options = options | {"cache": str(tmp_path / "attributes")}
    model_arg = "mnist5k" if which == "shipped" else began_dir
    model = shipped_model() if which == "shipped" else load_model(began_dir)
    x = stack_images(get_dataset("mnist5k", "test"), range(N_IMAGES))

    # genc bench: each image measured and started from seeds of its index in the split
    spec = {
        "data": "mnist5k",
        "split": "test",
        "n_images": N_IMAGES,
        "seed": 0,
        "tasks": [{"name": "t", "task": task, "params": params}],
        "methods": [name],
        "method_options": {name: options},
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    _cli("bench", tmp_path / "spec.json", "--model", model_arg, "--out", tmp_path / "bench")
    benched = load_tensors(tmp_path / "bench" / "outputs" / "t" / f"{name}.safetensors")["x_hat"]
    physics = task_physics(task, model, params, seed=0)
    y = simulate_each(physics, x, image_seeds(0, range(N_IMAGES), NOISE_STREAM))
    method = METHODS.build(name, model=model, **options)
    latent = hasattr(method, "solve") or getattr(method, "seeded", False)  # takes seeds
    seeds = {"seeds": image_seeds(0, range(N_IMAGES), LATENT_STREAM)} if latent else {}
    assert torch.equal(_uint8(method(y, physics, **seeds)), benched)

    # genc restore on the degraded images as files (a noise-free cs: --simulate on the clean
    # files); starts seeded by each file's name
    inputs = tmp_path / "inputs"
    simulate = task not in IMAGE_TASKS
    for i in range(N_IMAGES):
        write_image(inputs / f"d{i}.png", (x if simulate else y)[i].clamp(0, 1))
    argv = [
        "restore",
        inputs,
        "-o",
        tmp_path / "restore",
        "--model",
        model_arg,
        "--task",
        task,
        "--method",
        name,
    ] + (["--simulate"] if simulate else [])
    for key, value in params.items():
        argv += ["--param", f"{key}={value}"]
    for key, value in options.items():
        argv += ["--method-opt", f"{key}={json.dumps(value) if isinstance(value, bool) else value}"]
    _cli(*argv)
    files = torch.stack([read_image(inputs / f"d{i}.png", channels=1) for i in range(N_IMAGES)])
    with torch.no_grad():
        y_files = physics.A(files) if simulate else files
    seeds = [image_seed(0, f"d{i}", LATENT_STREAM) for i in range(N_IMAGES)]
    called = method(y_files, physics, seeds=seeds) if latent else method(y_files, physics)
    restored = torch.stack(
        [
            read_image(tmp_path / "restore" / "restored" / f"d{i}.png", channels=1)
            for i in range(N_IMAGES)
        ]
    )
    assert torch.equal(_uint8(called), _uint8(restored))
