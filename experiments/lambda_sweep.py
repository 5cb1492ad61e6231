"""Choose the latent prior weight lambda of GE and CSGM on TRAINING digits (never on the test
digits the tables report): mean PSNR for each lambda on a few tasks, 32 training digits.
Usage: python experiments/lambda_sweep.py [--model mnist5k] [--n 32]"""

import argparse

import torch

from generative_encoder.apps.restore import task_physics
from generative_encoder.data import get_dataset, stack_images
from generative_encoder.eval.metrics import psnr
from generative_encoder.io.zoo import resolve_model
from generative_encoder.methods import METHODS

parser = argparse.ArgumentParser()
parser.add_argument("--model", default="mnist5k")
parser.add_argument("--n", type=int, default=32)
parser.add_argument("--weights", default="0,1e-3,1e-2,1e-1")
args = parser.parse_args()

model = resolve_model(args.model)
x = stack_images(get_dataset("mnist5k", "train"), range(args.n))
tasks = [
    ("denoise", {"sigma": 0.4}),
    ("inpaint", {"mask": "block"}),
    ("superres", {"factor": 4}),
    ("encoder_cs", {}),
]
weights = [float(w) for w in args.weights.split(",")]
print("| method | task | " + " | ".join(f"lambda={w:g}" for w in weights) + " |")
print("| --- | --- | " + " | ".join("---:" for _ in weights) + " |")
for method in ("ge", "csgm"):
    for task, params in tasks:
        physics = task_physics(task, model, params, seed=1)
        with torch.no_grad():
            y = physics(x)
        cells = []
        for w in weights:
            x_hat = METHODS.build(method, model=model, latent_weight=w)(y, physics)
            cells.append(f"{psnr(x_hat, x).mean():.2f}")
        print(f"| {method} | {task} | " + " | ".join(cells) + " |", flush=True)
