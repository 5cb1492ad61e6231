"""What the selection scripts of this folder share: the model and its first training images."""

from __future__ import annotations

import argparse

import torch

from generative_encoder.cli import parse_options
from generative_encoder.data import get_dataset, stack_images
from generative_encoder.io.zoo import resolve_model


def model_and_training_images(args: argparse.Namespace):
    """Set torch's thread count to ``args.threads``; return (the model ``args.model``, the first
    ``args.n`` training images of ``args.data`` (N, C, H, W) in [0, 1])."""
    torch.set_num_threads(args.threads)
    model = resolve_model(args.model)
    train = get_dataset(args.data, "train", **parse_options(args.data_opt, "--data-opt"))
    return model, stack_images(train, range(min(args.n, len(train))))
