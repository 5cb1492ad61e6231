"""Automatic lambda (``latent_weight="auto"``) against the fixed default, on mnist5k test digits.

For each task and method: PSNR (mean +- std over the digits) of the fixed default lambda
(each method's default_latent_weight, tuned on training digits) and of lambda chosen from the
measurements alone: the discrepancy principle when the task's noise sigma is known, else a
held-out 10 % of the measured pixels (solve.weight.AUTO_GRID and neighbours). PSNR against the
clean digits is computed after solving only. Prints a Markdown table and the wall time.

    OMP_NUM_THREADS=1 python experiments/auto_lambda.py [--n 32] [--steps 250]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from generative_encoder.data import get_dataset, stack_images
from generative_encoder.eval.metrics import psnr, summarize
from generative_encoder.io.zoo import shipped_model
from generative_encoder.methods import METHODS
from generative_encoder.physics import make_physics

TASKS = {
    "denoise sigma=0.4": ("denoise", {"sigma": 0.4}),
    "superres x2 sigma=0.05": ("superres", {"factor": 2, "sigma": 0.05}),
    "inpaint block (noise-free)": ("inpaint", {"mask": "block"}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--methods", default="ge,csgm")
    parser.add_argument(
        "--tasks", help="comma-separated task names to run (default all): " + ", ".join(TASKS)
    )
    args = parser.parse_args()
    tasks = {
        k: v for k, v in TASKS.items() if not args.tasks or k.split()[0] in args.tasks.split(",")
    }
    torch.set_num_threads(1)
    model = shipped_model()
    x = stack_images(get_dataset("mnist5k", "test"), range(args.n))
    lines = [
        "| task | method | fixed lambda | PSNR fixed (dB) | auto rule | auto lambda | "
        "PSNR auto (dB) | seconds fixed / auto |",
        "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    t_start = time.perf_counter()
    for label, (task, params) in tasks.items():
        physics = make_physics(task, model.image_shape, seed=0, **params)
        with torch.no_grad():
            y = physics(x)
        for name in args.methods.split(","):
            cells, seconds = [], []
            for weight in (None, "auto"):
                method = METHODS.build(name, model=model, steps=args.steps, latent_weight=weight)
                t0 = time.perf_counter()
                x_hat = method(y, physics)
                seconds.append(time.perf_counter() - t0)
                s = summarize(psnr(x_hat, x))
                cells.append(f"{s['mean']:.2f} ± {s['std']:.2f}")
            auto = method.last_auto
            fixed = METHODS.build(name, model=model).latent_weight
            lines.append(
                f"| {label} | {name} | {fixed:g} | {cells[0]} | {auto.rule} | "
                f"{statistics.median(auto.chosen):g} | {cells[1]} | "
                f"{seconds[0]:.0f} / {seconds[1]:.0f} |"
            )
            print(lines[-1], f"chosen {auto.chosen}", flush=True)
    print("\n".join(lines))
    print(f"total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
