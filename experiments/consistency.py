"""Choose the data-consistency step of the latent methods on TRAINING digits (never the test
digits of the tables): mean PSNR and SSIM of G(z*) as it is (``none``) and after each step that
applies to the task, GE and CSGM, the GE paper's settings. The search is run once per method and
task; the steps are applied to its G(z*).
Usage: OMP_NUM_THREADS=1 python experiments/consistency.py [--model mnist5k] [--n 32]"""

import argparse
import time

import torch

from generative_encoder.data import get_dataset, stack_images
from generative_encoder.eval.metrics import psnr, ssim
from generative_encoder.io.zoo import resolve_model
from generative_encoder.methods import METHODS
from generative_encoder.physics import make_physics
from generative_encoder.physics.consistency import make_consistent

TASKS = {
    "denoise-0.1": ("denoise", {"sigma": 0.1}, ["project"]),
    "deblur": ("deblur", {"blur_sigma": 1.5, "sigma": 0.01}, ["project"]),
    "superres-x4": ("superres", {"factor": 4}, ["project"]),
    "inpaint-block": ("inpaint", {"mask": "block"}, ["paste", "blend"]),
    "inpaint-freeform": ("inpaint", {"mask": "freeform"}, ["paste", "blend"]),
    "cs-m100": ("cs", {"m": 100}, ["project"]),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="mnist5k")
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--steps", type=int, default=500)
    args = parser.parse_args()
    model = resolve_model(args.model)
    x = stack_images(get_dataset("mnist5k", "train"), range(args.n))
    print(f"{args.n} training digits, {args.steps} Adam steps, 2 restarts; mean PSNR (dB) / SSIM")
    print("| task | method | none | paste | blend | project |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    t0 = time.perf_counter()
    for label, (task, params, steps) in TASKS.items():
        physics = make_physics(task, model.image_shape, seed=1, **params)
        with torch.no_grad():
            y = physics(x)
        for name in ("ge", "csgm"):
            g = METHODS.build(name, model=model, steps=args.steps, consistency="none")(y, physics)
            outputs = {"none": g} | {how: make_consistent(g, y, physics, how) for how in steps}
            cells = {
                k: f"{psnr(v, x).mean():.2f} / {ssim(v, x).mean():.3f}" for k, v in outputs.items()
            }
            row = " | ".join(cells.get(k, "") for k in ("none", "paste", "blend", "project"))
            print(f"| {label} | {name} | {row} |", flush=True)
    print(f"wall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
