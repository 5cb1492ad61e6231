"""Adam's learning rate from the amortized start, chosen on TRAINING images: PSNR of `csgm` and
`ge` with ``start=amortized`` after each step count, for each learning rate, on the first ``--n``
training images of the model's data, for denoising (sigma 0.1), 4x super-resolution, block
inpainting and deblurring (blur 1.5 px, noise 0.01), one draw each (seed 0).

python experiments/amortized_lr.py --model mnist5k --n 256
python experiments/amortized_lr.py --model berea64 --data rock --n 32 --tasks denoise,superres \\
    --data-opt path=../shared/data/rock/berea.zip --data-opt patch=64 --data-opt stride=32 \\
    --data-opt test_fraction=0.25 --data-opt all_axes=true --data-opt max_patches=32
prints one line per (task, method, lr): mean PSNR at each step count.
"""

from __future__ import annotations

import argparse

import torch
from training_images import model_and_training_images

from generative_encoder.cli import add_data_args
from generative_encoder.eval.metrics import psnr
from generative_encoder.methods import METHODS
from generative_encoder.physics import make_physics

TASKS = {
    "denoise": {"sigma": 0.1},
    "superres": {"factor": 4},
    "inpaint": {"mask": "block"},
    "deblur": {"blur_sigma": 1.5, "sigma": 0.01},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="mnist5k")
    add_data_args(p)
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--methods", default="csgm,ge")
    p.add_argument("--lrs", default="0.05,0.1")
    p.add_argument("--steps", default="20,50,200")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    model, x = model_and_training_images(args)
    print(f"{len(x)} training images of {args.data}; steps {args.steps}")
    for task in args.tasks.split(","):
        physics = make_physics(task, model.image_shape, seed=0, **TASKS[task])
        torch.manual_seed(0)
        y = physics(x)
        for method in args.methods.split(","):
            for lr in map(float, args.lrs.split(",")):
                scores = []
                for steps in map(int, args.steps.split(",")):
                    solver = METHODS.build(
                        method, model=model, steps=steps, start="amortized", lr=lr
                    )
                    scores.append(f"{float(psnr(solver(y, physics), x).mean()):.2f}")
                print(f"{task} {method} lr={lr:g}: {' '.join(scores)}", flush=True)


if __name__ == "__main__":
    main()
