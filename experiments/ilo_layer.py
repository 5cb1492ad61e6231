"""Intermediate Layer Optimization's split point and radius, chosen on TRAINING images: mean PSNR
of a latent method with ``ilo_steps`` after its search, for each ILO layer and radius (and
without ILO, layer "-"), on the first ``--n`` training images of the model's data, one draw per
task (seed 0). Every task's physics and the search are those of the bench specs: denoising at
sigma ``--sigma`` (0.3, the rock specs'; the faces specs' is 0.4), deblurring (blur 1.5 px,
noise 0.01), 4x super-resolution, block and free-form inpainting, compressed sensing (m = 500).

python experiments/ilo_layer.py --model berea64 --data rock --n 16 --tasks superres,deblur \\
    --data-opt path=../shared/data/rock/berea.zip --data-opt patch=64 --data-opt stride=32 \\
    --data-opt test_fraction=0.25 --data-opt all_axes=true --data-opt max_patches=16
prints one line per (task, method): mean PSNR without ILO and the search's seconds, then for
each (layer, radius) the PSNR after ILO on that one search and the seconds ILO added.
"""

from __future__ import annotations

import itertools
import time

from training_images import measured, model_and_training_images, search_parser

from generative_encoder.eval.metrics import psnr
from generative_encoder.methods import METHODS


def main() -> None:
    p = search_parser(__doc__.split("\n\n")[0], "superres,deblur,block")
    p.add_argument("--layers", default="1,2,3")
    p.add_argument("--radii", default="0.2")
    args = p.parse_args()
    model, x = model_and_training_images(args)
    print(f"{len(x)} training images of {args.data}; {args.steps} search steps", flush=True)
    settings = list(
        itertools.product(map(int, args.layers.split(",")), map(float, args.radii.split(",")))
    )
    for task in args.tasks.split(","):
        physics, y = measured(task, args.sigma, model.image_shape, x)
        for method in args.methods.split(","):
            t0 = time.perf_counter()
            plain = METHODS.build(method, model=model, steps=args.steps).solve(y, physics)
            score = float(psnr(plain.x, x).mean())
            scores = [f"-: {score:.2f} ({time.perf_counter() - t0:.0f} s)"]
            for layer, radius in settings:  # the one search above, refined by each ILO setting
                solver = METHODS.build(
                    method,
                    model=model,
                    steps=args.steps,
                    ilo_steps=args.ilo_steps,
                    ilo_layer=layer,
                    ilo_radius=radius,
                )
                t0 = time.perf_counter()
                score = float(psnr(solver.refine(plain, y, physics).x, x).mean())
                scores.append(
                    f"{layer}/{radius:g}: {score:.2f} (+{time.perf_counter() - t0:.0f} s)"
                )
            print(f"{task} {method}: {', '.join(scores)}", flush=True)


if __name__ == "__main__":
    main()
