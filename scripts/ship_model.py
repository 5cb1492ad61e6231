"""Copy a finished model folder into the package's shipped models, weights in float16.

Copies every network (``NAME.safetensors`` with floating tensors cast to float16, and
``NAME.json``), ``model.json``, the training logs and the last sample grid; never the resumable
run state, nor the codec's quantiser (fit it again on the shipped encoder: ``genc train
codec``). Then loads both folders and prints how far the float16 networks are from the float32
ones on the same inputs (largest |difference| of G(z) over 256 latents, and of E(G(z))), so that
the card can say whether quality holds.

Usage: python scripts/ship_model.py RUN_DIR src/generative_encoder/weights/NAME
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from generative_encoder.io.checkpoints import (
    NETWORK_FORMAT,
    load_model,
    load_tensors,
    read_json,
    save_tensors,
)

LOGS = (
    "gan_log.csv",
    "encoder_log.csv",
    "regressor_log.csv",
    "denoiser_log.csv",
    "train_time.txt",
    "model.json",
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("dest", type=Path)
    args = p.parse_args()
    args.dest.mkdir(parents=True, exist_ok=True)
    for config in sorted(args.run.glob("*.json")):
        weights = config.with_suffix(".safetensors")
        if not weights.exists() or read_json(config).get("format") != NETWORK_FORMAT:
            continue  # run state and quantisers (refit on the shipped encoder) stay behind
        tensors = load_tensors(weights)
        half = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
        save_tensors(args.dest / weights.name, half)
        shutil.copy(config, args.dest / config.name)
    for name in LOGS:
        if (args.run / name).exists():
            shutil.copy(args.run / name, args.dest / name)
    samples = sorted((args.run / "samples").glob("step_*.png"))
    if samples:
        shutil.copy(samples[-1], args.dest / "samples.png")

    full, shipped = load_model(args.run), load_model(args.dest)
    z = full.generator.sample_latent(256, torch.Generator().manual_seed(0))
    with torch.no_grad():
        x_full, x_half = full.generator(z), shipped.generator(z)
        print(f"generator: largest |G32(z) - G16(z)| = {(x_full - x_half).abs().max():.2e}")
        if full.encoder is not None:
            diff = (full.encoder(x_full) - shipped.encoder(x_full)).abs().max()
            scale = full.encoder(x_full).abs().max()
            print(f"encoder: largest |E32(x) - E16(x)| = {diff:.2e} (codes up to {scale:.2f})")
        if full.network("denoiser") is not None:
            noise = torch.randn(x_full.shape, generator=torch.Generator().manual_seed(1))
            noisy = x_full + 0.1 * noise
            diff = full.network("denoiser")(noisy, 0.1) - shipped.network("denoiser")(noisy, 0.1)
            print(f"denoiser: largest |D32(x) - D16(x)| = {diff.abs().max():.2e} at noise 0.1")


if __name__ == "__main__":
    main()
