"""Would a second layer lift the GE codec into the 0.1-0.3 bpp band? Measured on TRAINING images
(never the test set): each image is compressed at ``--bits`` and decoded by the autoencoder (the
codec's most faithful decoder); the decoding's error x - x_hat is average-pooled to s x s, quantised
uniformly with step q and added back, bicubically upsampled. The layer's rate is the cross-entropy
of its symbols under per-coordinate frequency tables counted on the first half of the images
(add-one smoothed), measured on the second half: what a range coder with those tables would
spend, header aside. Reports, on the second half, the whole rate in bits per pixel (the .genc
file plus the layer), PSNR and SSIM (float images), beside the codec alone.

Usage: python experiments/codec_residual.py --model celeba64 --data folder \\
           --data-opt root=../shared/data/celeba_aligned_9k --data-opt size=64 \\
           --data-opt test_size=1000 --n 400 [--threads 2] [--bits 6] [--sizes 4,8] \\
           [--steps 0.02,0.04,0.08]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F
from training_images import model_and_training_images

from generative_encoder.apps.codec import Codec
from generative_encoder.cli import add_data_args
from generative_encoder.eval.metrics import psnr, ssim


def cross_entropy_bits(fit: np.ndarray, held: np.ndarray) -> np.ndarray:
    """Bits per held row of integer symbols (N, D) under per-column tables counted on ``fit``,
    add-one smoothed over the symbols seen in either."""
    bits = np.zeros(len(held))
    for j in range(fit.shape[1]):
        low = min(fit[:, j].min(), held[:, j].min())
        high = max(fit[:, j].max(), held[:, j].max())
        counts = np.bincount(fit[:, j] - low, minlength=high - low + 1) + 1.0
        bits -= np.log2(counts[held[:, j] - low] / counts.sum())
    return bits


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="mnist5k")
    p.add_argument("--n", type=int, default=400, help="training images: half fit, half held")
    p.add_argument("--bits", type=int, default=6)
    p.add_argument("--sizes", default="4,8", help="side of the pooled residual")
    p.add_argument("--steps", default="0.02,0.04,0.08", help="quantiser steps of the residual")
    p.add_argument("--threads", type=int, default=1)
    add_data_args(p)
    args = p.parse_args()
    model, x = model_and_training_images(args)
    codec = Codec(model)
    half = len(x) // 2
    files = codec.compress(x, args.bits)
    x_hat = codec.decompress(files, "autoencoder")
    pixels = x.shape[-1] * x.shape[-2]
    file_bits = np.array([8.0 * len(f) for f in files[half:]])
    held, held_hat = x[half:], x_hat[half:]

    def report(name: str, extra_bits: np.ndarray, decoded: torch.Tensor) -> None:
        row = {
            "layer": name,
            "bytes": round(float((file_bits + extra_bits).mean()) / 8, 1),
            "bpp": round(float((file_bits + extra_bits).mean()) / pixels, 4),
            "psnr": round(float(psnr(decoded, held).mean()), 3),
            "ssim": round(float(ssim(decoded, held).mean()), 4),
        }
        print(json.dumps(row), flush=True)

    report("none", np.zeros(len(held)), held_hat)
    residual = x - x_hat
    for size in map(int, args.sizes.split(",")):
        pooled = F.adaptive_avg_pool2d(residual, size)
        for step in map(float, args.steps.split(",")):
            symbols = torch.round(pooled / step).flatten(1).long().numpy()
            extra = cross_entropy_bits(symbols[:half], symbols[half:])
            layer = torch.from_numpy(symbols[half:]).float().view(-1, *pooled.shape[1:]) * step
            up = F.interpolate(layer, size=x.shape[-2:], mode="bicubic", align_corners=False)
            report(f"{size}x{size}, step {step:g}", extra, (held_hat + up).clamp(0, 1))


if __name__ == "__main__":
    main()
