"""Time to quality: how long each solver takes per image to reach the mean PSNR that deepinv's
``CSGMGenerator`` reaches in 500 iterations, on the same problems and generator, in one run.

Problem: denoising (A = identity, sigma ``--sigma``) of the first ``--n`` test images of the
model's data (one noise draw). Rows:

- ``deepinv CSGMGenerator``: image by image, its own settings (lr 1e-2, U[-1, 1] start, no
  prior, last iterate, ``--peer-steps`` iterations), the generator frozen as our engine freezes
  it (``solve_vs_deepinv.py`` explains the setup); on the first ``--peer-n`` images. Its mean
  PSNR on them is the target Q, its seconds per image the reference.
- ``csgm`` and ``ge`` with the paper's settings (Adam lr 0.1, the methods' lambda, 2 restarts,
  best iterate), each with ``start=prior`` (two restarts from N(0, I)), ``start=amortized`` (one
  start at R(E(x_dagger)), the model's latent regressor) and ``start=amortized+prior``, each run
  at every iteration count of ``--steps`` on all ``--n`` problems in one batch; and ``amortized``
  (G(R(E(x_dagger))), zero iterations).

For each row: seconds per image and mean PSNR at each iteration count (PSNR on the peer's
images, to compare with Q), the first count that reaches Q, its seconds per image and the
speed-up over deepinv (deepinv's seconds per image / ours at that count: the time-to-quality
ratio), and PSNR at the largest count that costs no more per image than deepinv.

``--early-stop TOL/PATIENCE,...`` adds, per method and start, a row that runs at most the largest
count of ``--steps`` and stops each problem once its objective changed by less than TOL over
PATIENCE steps (the engine's ``early_stop_tol`` and ``patience``; stopped rows leave the batch);
its ``steps`` is the mean number of steps the problems ran. ``--split train`` runs everything on
training images, where the stopping rule and iteration counts are chosen.

``--lrs 0.1,0.05`` runs every latent row at each of these Adam learning rates (rows named
``... lr=0.05`` for all but the paper's 0.1). ``--repeats K`` times every row (and deepinv) K
times and keeps the median seconds, since one run on a shared machine varies by about a third.

Usage: python benchmarks/time_to_quality.py --out runs/ttq_mnist5k.json
       python benchmarks/time_to_quality.py --model runs/berea64 --data rock \\
           --data-opt path=../shared/data/rock/berea.zip --data-opt patch=64 ... --threads 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from generative_encoder.cli import add_data_args, parse_options
from generative_encoder.data import get_dataset, stack_images
from generative_encoder.eval.metrics import psnr
from generative_encoder.io.zoo import resolve_model
from generative_encoder.methods import METHODS
from generative_encoder.methods.latent import STARTS
from generative_encoder.physics import make_physics
from generative_encoder.solve.engine import SearchResult, SolveConfig

sys.path.insert(0, str(Path(__file__).parent))
from solve_vs_deepinv import DEEPINV_LR, machine_info, run_deepinv  # noqa: E402

PAPER_LR = SolveConfig().lr


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="mnist5k")
    add_data_args(p)
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--peer-n", type=int, default=16)
    p.add_argument("--peer-steps", type=int, default=500)
    p.add_argument("--steps", default="5,10,20,50,100,200,500")
    p.add_argument("--methods", default="csgm,ge", help="latent methods to time")
    p.add_argument("--starts", default=",".join(STARTS), help="their starts to time")
    p.add_argument("--early-stop", default="", metavar="TOL/PATIENCE,...")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--lrs", default="0.1", help="Adam learning rates of the latent rows")
    p.add_argument("--repeats", type=int, default=1, help="timings per row; the median is kept")
    p.add_argument("--sigma", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    info = machine_info(args.threads)
    model = resolve_model(args.model)
    test = get_dataset(args.data, args.split, **parse_options(args.data_opt, "--data-opt"))
    x = stack_images(test, range(min(args.n, len(test))))
    physics = make_physics("denoise", model.image_shape, seed=args.seed, sigma=args.sigma)
    torch.manual_seed(args.seed)
    y = physics(x)
    k = min(args.peer_n, len(x))

    peer_args = argparse.Namespace(steps=args.peer_steps, lr=DEEPINV_LR, peer_n=k, seed=args.seed)
    walls = []
    for _ in range(args.repeats):
        peer, _ = run_deepinv(model.generator, y, x, physics, peer_args, stock=False)
        walls.append(peer.wall_s)
    target = peer.mean_psnr
    peer_s = statistics.median(walls) / k
    print(f"{info}\ndeepinv: {peer_s:.3f} s/image, mean PSNR {target:.2f} dB on {k} images")

    rows = []

    def record(name: str, steps: int, fn) -> None:
        fn(y[:2])  # warm-up
        walls = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            x_hat = fn(y)
            walls.append(time.perf_counter() - t0)
        wall = statistics.median(walls)
        if isinstance(x_hat, SearchResult):
            steps = float(x_hat.steps_run.float().mean())
            x_hat = x_hat.x
        x_hat = x_hat.detach()
        row = {
            "row": name,
            "steps": steps,
            "s_per_image": wall / len(y),
            "psnr_peer_images": float(psnr(x_hat[:k], x[:k]).mean()),
            "psnr_all": float(psnr(x_hat, x).mean()),
            "psnr_each": [round(float(v), 4) for v in psnr(x_hat, x)],  # for paired comparisons
        }
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "psnr_each"}), flush=True)

    amortized = METHODS.build("amortized", model=model)
    record("amortized", 0, lambda b: amortized(b, physics))
    for method in args.methods.split(","):
        for start in args.starts.split(","):
            for lr in map(float, args.lrs.split(",")):
                name = f"{method} start={start}" + ("" if lr == PAPER_LR else f" lr={lr:g}")
                for steps in map(int, args.steps.split(",")):
                    solver = METHODS.build(method, model=model, steps=steps, start=start, lr=lr)
                    record(name, steps, lambda b, s=solver: s(b, physics))
            for rule in filter(None, args.early_stop.split(",")):
                tol, patience = rule.split("/")
                solver = METHODS.build(
                    method,
                    model=model,
                    steps=max(map(int, args.steps.split(","))),
                    start=start,
                    early_stop_tol=float(tol),
                    patience=int(patience),
                )
                name = f"{method} start={start} stop={rule}"
                record(name, 0, lambda b, s=solver: s.solve(b, physics))

    summary = []
    for name in dict.fromkeys(r["row"] for r in rows if "stop=" not in r["row"]):
        mine = sorted((r for r in rows if r["row"] == name), key=lambda r: r["steps"])
        reached = next((r for r in mine if r["psnr_peer_images"] >= target), None)
        affordable = [r for r in mine if r["s_per_image"] <= peer_s]
        summary.append(
            {
                "row": name,
                "images_per_s_at_max_steps": 1 / mine[-1]["s_per_image"],
                "steps_to_target": reached and reached["steps"],
                "s_per_image_to_target": reached and reached["s_per_image"],
                "time_to_quality_speedup": reached and peer_s / reached["s_per_image"],
                "psnr_at_equal_time": affordable[-1]["psnr_peer_images"] if affordable else None,
            }
        )
    print("\n| row | images/s at max steps | steps to Q | s/image to Q | speed-up vs deepinv |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for s in summary:
        if s["steps_to_target"] is None:
            print(f"| {s['row']} | {s['images_per_s_at_max_steps']:.1f} | not reached | | |")
        else:
            print(
                f"| {s['row']} | {s['images_per_s_at_max_steps']:.1f} | {s['steps_to_target']} | "
                f"{s['s_per_image_to_target']:.4f} | {s['time_to_quality_speedup']:.0f}x |"
            )
    for r in rows:
        if "stop=" in r["row"]:
            reached = "reaches" if r["psnr_peer_images"] >= target else "misses"
            print(
                f"{r['row']}: {r['steps']:.1f} steps on average, {r['s_per_image']:.4f} s/image, "
                f"{reached} Q ({r['psnr_peer_images']:.2f} dB), "
                f"{peer_s / r['s_per_image']:.0f}x deepinv's rate"
            )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {
                    "machine": info,
                    "args": {k_: str(v) for k_, v in vars(args).items()},
                    "deepinv": {"s_per_image": peer_s, "mean_psnr": target, "images": k},
                    "rows": rows,
                    "summary": summary,
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
