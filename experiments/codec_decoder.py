"""Which GE start should `genc decompress` use? Measured on TRAINING digits (never the test set):
GE decoding of `.genc` files at several rates, from the prior's two restarts, from the latent
regressor's one start, and from both, with the paper's 500 steps, plus the autoencoder and the
regressor alone (`amortized`); with `--ensemble K`, also the mean of K GE decodings
(`ensemble=K`). Other models' training images: `--data` and `--data-opt` as in `genc bench`.

Usage: python experiments/codec_decoder.py --n 64 [--bits 2,3,4] [--steps 500] [--ensemble 4]
"""

from __future__ import annotations

import argparse
import json
import time

from generative_encoder.apps.codec import Codec
from generative_encoder.cli import parse_options
from generative_encoder.data import get_dataset, stack_images
from generative_encoder.eval.metrics import paired_difference, psnr
from generative_encoder.io.zoo import resolve_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="mnist5k")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--bits", default="2,3,4")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--ensemble", type=int, default=0, help="also GE with ensemble=K (0: not)")
    p.add_argument("--data", help="dataset name (default: the model's)")
    p.add_argument("--data-opt", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args()
    codec = Codec(resolve_model(args.model))
    data = args.data or codec.model.info["dataset"]
    train = get_dataset(data, "train", **parse_options(args.data_opt, "--data-opt"))
    x = stack_images(train, range(args.n))
    for bits in map(int, args.bits.split(",")):
        files = codec.compress(x, bits)
        scores = {}
        runs = {
            "autoencoder": ("autoencoder", {}),
            "amortized": ("amortized", {}),
            "ge start=prior": ("ge", {"steps": args.steps}),
            "ge start=amortized": ("ge", {"steps": args.steps, "start": "amortized"}),
            "ge start=amortized+prior": ("ge", {"steps": args.steps, "start": "amortized+prior"}),
        }
        if args.ensemble:
            runs[f"ge ensemble={args.ensemble}"] = (
                "ge",
                {"steps": args.steps, "ensemble": args.ensemble},
            )
        for name, (decoder, options) in runs.items():
            t0 = time.perf_counter()
            x_hat = codec.decompress(files, decoder, **options)
            scores[name] = psnr(x_hat, x)
            print(
                json.dumps(
                    {
                        "bits": bits,
                        "decoder": name,
                        "psnr": round(float(scores[name].mean()), 3),
                        "seconds": round(time.perf_counter() - t0, 1),
                    }
                ),
                flush=True,
            )
        both = paired_difference(scores["ge start=amortized+prior"], scores["ge start=prior"])
        print(json.dumps({"bits": bits, "amortized+prior minus prior (dB)": both}), flush=True)
        if args.ensemble:
            mean = paired_difference(
                scores[f"ge ensemble={args.ensemble}"], scores["ge start=prior"]
            )
            key = f"ensemble={args.ensemble} minus prior (dB)"
            print(json.dumps({"bits": bits, key: mean}), flush=True)


if __name__ == "__main__":
    main()
