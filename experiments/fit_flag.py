"""Does the fit flag separate in-domain from out-of-domain inputs?

The shipped digit model (mnist5k) restores three sets of 28 x 28 grayscale images:
in-domain mnist5k test digits, CelebA faces (``../shared/data/celeba_aligned_9k``, the folder
data set's test split, centre crop, resized to 28, gray) and Berea sandstone patches
(``../shared/data/rock/berea.zip``, test slices, 28 x 28 patches). Each image is measured with its
own seeded noise, restored by GE and CSGM (500 Adam steps x 2 restarts, the defaults), and
flagged when its discrepancy ratio ||y - A(x_hat)||^2 / (n sigma^2) exceeds tau, where tau is
calibrated once per (task, method) on 16 generator samples (generative_encoder.eval.diagnostics).
Nothing here looks at a clean image before the flag is set.

    OMP_NUM_THREADS=1 python experiments/fit_flag.py [--n 64] [--steps 500]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from generative_encoder.apps.restore import restore, simulate_each, task_physics
from generative_encoder.data import get_dataset, stack_images
from generative_encoder.eval.diagnostics import calibrate
from generative_encoder.io.zoo import shipped_model
from generative_encoder.physics.seeds import LATENT_STREAM, NOISE_STREAM, image_seed

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TASKS = {
    "denoise sigma=0.1": ("denoise", {"sigma": 0.1}),
    "superres x2 sigma=0.05": ("superres", {"factor": 2, "sigma": 0.05}),
}
METHODS = ("ge", "csgm")


def image_sets(n: int) -> dict[str, torch.Tensor]:
    faces = SHARED / "celeba_aligned_9k"
    rock = SHARED / "rock" / "berea.zip"
    if not faces.is_dir() or not rock.is_file():
        raise SystemExit(f"needs {faces} and {rock} (see ../shared/data/README.md)")
    sets = {
        "digits (in-domain)": get_dataset("mnist5k", "test"),
        "faces": get_dataset("folder", "test", root=str(faces), size=28, channels=1),
        "rock": get_dataset("rock", "test", path=str(rock), patch=28, max_patches=n),
    }
    return {name: stack_images(d, range(n)) for name, d in sets.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument(
        "--tasks", help="comma-separated task names to run (default all): " + ", ".join(TASKS)
    )
    args = parser.parse_args()
    tasks = {
        k: v for k, v in TASKS.items() if not args.tasks or k.split()[0] in args.tasks.split(",")
    }
    torch.set_num_threads(1)
    model = shipped_model()
    sets = image_sets(args.n)
    lines = [
        "| task | method | tau | "
        + " | ".join(f"{s}: flagged" for s in sets)
        + " | "
        + " | ".join(f"{s}: median ratio" for s in sets)
        + " |",
        "| --- | --- | ---: |" + " ---: |" * (2 * len(sets)),
    ]
    t_start = time.perf_counter()
    for label, (task, params) in tasks.items():
        physics = task_physics(task, model, params, seed=0)
        for method in args.methods.split(","):
            solver = METHODS.build(method, model=model, steps=args.steps)
            cal = calibrate(
                lambda y, seeds: restore(y, physics, solver, seeds=seeds).x,
                physics,
                model.generator,
            )
            flagged, medians = [], []
            for name, x in sets.items():
                names = [f"{name}-{i}" for i in range(len(x))]
                y = simulate_each(physics, x, [image_seed(0, s, NOISE_STREAM) for s in names])
                out = restore(
                    y,
                    physics,
                    solver,
                    tau=cal.tau,
                    seeds=[image_seed(0, s, LATENT_STREAM) for s in names],
                )
                flagged.append(
                    f"{int(out.flagged.sum())}/{len(x)} ({100 * out.flagged.float().mean():.0f} %)"
                )
                medians.append(f"{out.discrepancy.median():.2f}")
                print(
                    f"{label} {method} {name}: flagged {flagged[-1]}, ratio median "
                    f"{medians[-1]}, q10 {out.discrepancy.quantile(0.1):.2f}, "
                    f"q90 {out.discrepancy.quantile(0.9):.2f} "
                    f"[{time.perf_counter() - t_start:.0f} s]",
                    flush=True,
                )
            lines.append(
                f"| {label} | {method} | {cal.tau:.2f} (chi2 {cal.chi2:.2f}, calib. "
                f"median {cal.ratios.median():.2f}) | "
                + " | ".join(flagged)
                + " | "
                + " | ".join(medians)
                + " |"
            )
    print("\n".join(lines))
    print(f"total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
