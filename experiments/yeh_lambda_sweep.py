"""Choose Yeh et al.'s prior weight lambda on TRAINING digits, never on the test digits the tables
report: mean PSNR per setting on Yeh's four tasks that fit 1-channel digits. The latent prior's
weight is the seed's lambda / 2 ("derived") unless --latent-weights gives fixed values.
Usage: OMP_NUM_THREADS=1 python experiments/yeh_lambda_sweep.py [--model mnist5k] [--n 16]"""

import argparse
import time

import torch

from generative_encoder.data import get_dataset, stack_images
from generative_encoder.eval.metrics import psnr
from generative_encoder.io.zoo import resolve_model
from generative_encoder.methods import METHODS
from generative_encoder.physics import make_physics

parser = argparse.ArgumentParser()
parser.add_argument("--model", default="mnist5k")
parser.add_argument("--n", type=int, default=16)
parser.add_argument("--steps", type=int, default=300)
parser.add_argument("--disc-weights", default="0,0.01,0.03,0.1,0.3,1")
parser.add_argument(
    "--latent-weights",
    default="derived",
    help="comma-separated fixed weights of ||z||^2, or 'derived' (lambda / 2)",
)
args = parser.parse_args()

model = resolve_model(args.model)
x = stack_images(get_dataset("mnist5k", "train"), range(args.n))
side = model.image_shape[-1]
tasks = [
    ("inpaint", {"mask": "block", "block": round(32 / 64 * side)}),
    ("superres", {"factor": 4}),
    ("denoise", {"sigma": 0.1}),
    ("quantize", {"levels": 5}),
]
disc_weights = [float(w) for w in args.disc_weights.split(",")]
latent_weights = [None if w == "derived" else float(w) for w in args.latent_weights.split(",")]
t0 = time.perf_counter()
print(f"{args.n} training digits, {args.steps} Adam steps (lr 0.1), 2 restarts; mean PSNR (dB)")
print("| latent weight | task | " + " | ".join(f"lambda={w:g}" for w in disc_weights) + " |")
print("| ---: | --- | " + " | ".join("---:" for _ in disc_weights) + " |")
for latent_weight in latent_weights:
    for task, params in tasks:
        physics = make_physics(task, model.image_shape, seed=1, **params)
        with torch.no_grad():
            y = physics(x)
        cells = []
        for w in disc_weights:
            method = METHODS.build(
                "yeh", model=model, disc_weight=w, latent_weight=latent_weight, steps=args.steps
            )
            cells.append(f"{psnr(method(y, physics), x).mean():.2f}")
        label = "lambda / 2" if latent_weight is None else f"{latent_weight:g}"
        print(f"| {label} | {task} | " + " | ".join(cells) + " |", flush=True)
print(f"wall time {time.perf_counter() - t0:.0f} s")
