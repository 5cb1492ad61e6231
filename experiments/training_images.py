"""What the selection scripts of this folder share: the model and its first training images, the
bench specs' tasks, and the options of a search followed by ILO."""

from __future__ import annotations

import argparse

import torch

from generative_encoder.cli import add_data_args, parse_options
from generative_encoder.data import get_dataset, stack_images
from generative_encoder.io.zoo import resolve_model
from generative_encoder.physics import make_physics

# the bench specs' physics of each task; denoising's sigma is the script's --sigma
TASKS = {
    "denoise": ("denoise", {"sigma": 0.3}),
    "deblur": ("deblur", {"blur_sigma": 1.5, "sigma": 0.01}),
    "superres": ("superres", {"factor": 4}),
    "block": ("inpaint", {"mask": "block"}),
    "freeform": ("inpaint", {"mask": "freeform"}),
    "cs": ("cs", {"m": 500}),
}


def search_parser(description: str, tasks: str) -> argparse.ArgumentParser:
    """The options of a script that measures a latent search then ILO on training images:
    --model, the data options, --n, --tasks (default ``tasks``), --methods, --steps,
    --ilo-steps, --sigma, --threads."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--model", default="mnist5k")
    add_data_args(p)
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--tasks", default=tasks)
    p.add_argument("--methods", default="csgm")
    p.add_argument("--steps", type=int, default=200, help="search steps before ILO")
    p.add_argument("--ilo-steps", type=int, default=100)
    p.add_argument("--sigma", type=float, default=0.3, help="noise level of the denoising task")
    p.add_argument("--threads", type=int, default=1)
    return p


def measured(task: str, sigma: float, image_shape, x: torch.Tensor):
    """(physics, y) of ``task`` (a key of TASKS) on images x (N, C, H, W), one draw (seed 0)."""
    name, params = TASKS[task]
    params = {"sigma": sigma} if task == "denoise" else params
    physics = make_physics(name, image_shape, seed=0, **params)
    torch.manual_seed(0)
    return physics, physics(x)


def model_and_training_images(args: argparse.Namespace):
    """Set torch's thread count to ``args.threads``; return (the model ``args.model``, the first
    ``args.n`` training images of ``args.data`` (N, C, H, W) in [0, 1])."""
    torch.set_num_threads(args.threads)
    model = resolve_model(args.model)
    train = get_dataset(args.data, "train", **parse_options(args.data_opt, "--data-opt"))
    return model, stack_images(train, range(min(args.n, len(train))))
