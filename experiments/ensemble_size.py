"""How many averaged solves (``ensemble``) and restarts each, chosen on TRAINING images: mean PSNR
of a latent method's first member alone and of the mean of its first k members, k = 1 .. K, on
the first ``--n`` training images of the model's data, one draw per task (seed 0), beside the
task's classical row. The tasks and the search are those of the bench specs (see
``training_images.py``); the search runs ``--steps`` steps and then ``--ilo-steps`` ILO steps at the
default layer (0: none).

python experiments/ensemble_size.py --model berea64 --data rock --n 16 --tasks cs,denoise \\
    --data-opt path=../shared/data/rock/berea.zip --data-opt patch=64 --data-opt stride=32 \\
    --data-opt test_fraction=0.25 --data-opt all_axes=true --data-opt max_patches=16 \\
    --members 4 --restarts 1,2
prints one line per (task, method, restarts): the classical row, the mean of k members, and
how well the members' spread (per-pixel standard deviation) tells where the mean is wrong: its
correlation with the absolute error over all pixels, and over images (mean spread against MSE).
"""

from __future__ import annotations

import time

import torch
from training_images import measured, model_and_training_images, search_parser

from generative_encoder.eval.metrics import psnr
from generative_encoder.methods import METHODS

CLASSICAL = {
    "denoise": "bm3d",
    "deblur": "wiener",
    "superres": "bicubic",
    "block": "biharmonic",
    "freeform": "biharmonic",
    "cs": "lasso_dct",
}


def main() -> None:
    p = search_parser(__doc__.split("\n\n")[0], "cs,denoise,block,freeform")
    p.add_argument("--members", type=int, default=4, help="the largest ensemble K")
    p.add_argument("--restarts", default="2", help="comma-separated restarts per member")
    args = p.parse_args()
    model, x = model_and_training_images(args)
    print(f"{len(x)} training images of {args.data}; {args.steps} search steps", flush=True)
    for task in args.tasks.split(","):
        physics, y = measured(task, args.sigma, model.image_shape, x)
        classical = METHODS.build(CLASSICAL[task], model=model)
        row = f"{CLASSICAL[task]} {float(psnr(classical(y, physics).clamp(0, 1), x).mean()):.2f}"
        for method in args.methods.split(","):
            for restarts in map(int, args.restarts.split(",")):
                solver = METHODS.build(
                    method,
                    model=model,
                    steps=args.steps,
                    restarts=restarts,
                    ilo_steps=args.ilo_steps,
                    ensemble=args.members,
                )
                t0 = time.perf_counter()
                members = solver.solve(y, physics).members  # (N, K, C, H, W)
                seconds = time.perf_counter() - t0
                means = [
                    f"{float(psnr(members[:, :k].mean(1), x).mean()):.2f}"
                    for k in range(1, args.members + 1)
                ]
                spread = members.std(1, unbiased=False)  # (N, C, H, W)
                error = (members.mean(1) - x).abs()
                pixels = _correlation(spread.flatten(), error.flatten())
                images = _correlation(spread.flatten(1).mean(1), error.square().flatten(1).mean(1))
                print(
                    f"{task} {method} restarts={restarts}: {row}; mean of 1..{args.members}: "
                    f"{' / '.join(means)}; spread-error correlation: pixels {pixels:.2f}, "
                    f"images {images:.2f} ({seconds:.0f} s)",
                    flush=True,
                )


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson's correlation of two 1-D tensors."""
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


if __name__ == "__main__":
    main()
