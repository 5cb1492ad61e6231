"""The representation error of a generator on the FIRST ``--n`` held-out images (CSGM with A =
identity, 500 steps, 2 restarts: `generative_encoder.apps.evaluate.representation_error`), for
checking a GAN's checkpoints on the same images while it trains (`genc evaluate-model` draws its
images at random and measures much more).

python experiments/representation_trend.py RUN_COPY --data folder \\
    --data-opt root=../shared/data/celeba_aligned_9k --data-opt size=64 --data-opt test_size=1000
"""

from __future__ import annotations

import argparse
import time

from generative_encoder.apps.evaluate import representation_error
from generative_encoder.cli import add_data_args, parse_options
from generative_encoder.data import get_dataset, stack_images
from generative_encoder.io.zoo import resolve_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="model folder (a copy, when its run is still writing it)")
    add_data_args(p)
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--restarts", type=int, default=2)
    args = p.parse_args()
    model = resolve_model(args.model)
    test = get_dataset(args.data, "test", **parse_options(args.data_opt, "--data-opt"))
    x = stack_images(test, range(min(args.n, len(test))))
    t0 = time.perf_counter()
    errors = representation_error(model, x, args.steps, args.restarts)
    print(
        f"{args.model} (GAN step {model.info.get('gan_steps')}): representation MSE "
        f"{errors.mean():.5f} (sd {errors.std():.5f}) on the first {len(x)} held-out images, "
        f"{time.perf_counter() - t0:.0f} s"
    )


if __name__ == "__main__":
    main()
