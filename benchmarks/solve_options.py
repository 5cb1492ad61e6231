"""What the engine's options cost and save on the demo's problems (``generative_encoder.apps.demo``:
16 mnist5k test digits x 7 tasks, the shipped model, GE and CSGM at the demo's 250 steps and
2 restarts): wall time and mean PSNR with early stopping off and on (stopped rows leave the
batch), and with bf16 autocast off and on (on ``--autocast-tasks`` only: it is slow on CPUs
without native bf16).

Usage: python benchmarks/solve_options.py [--tol 1e-3] [--patience 20] [--autocast-tasks ...]
"""

from __future__ import annotations

import argparse
import time

import torch

from generative_encoder.apps.demo import DEMO_SPEC
from generative_encoder.data import get_dataset, stack_images
from generative_encoder.eval.metrics import psnr
from generative_encoder.io.zoo import shipped_model
from generative_encoder.methods import METHODS
from generative_encoder.physics import make_physics


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tol", type=float, default=1e-3, help="early_stop_tol (%(default)s)")
    p.add_argument("--patience", type=int, default=20, help="patience (%(default)s)")
    p.add_argument("--methods", default="ge,csgm")
    p.add_argument(
        "--autocast-tasks",
        default="denoise-0.4,inpaint-block",
        help="demo tasks on which bf16 autocast is measured ('' for none)",
    )
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    model = shipped_model()
    spec = DEMO_SPEC
    x = stack_images(get_dataset(spec.data, spec.split), range(spec.n_images))
    autocast_tasks = [t for t in args.autocast_tasks.split(",") if t]
    print(
        f"demo problems: {spec.n_images} digits x {len(spec.tasks)} tasks; "
        f"{args.threads} thread(s); early stopping tol {args.tol}, patience {args.patience}"
    )
    print("| task | method | setting | wall s | mean PSNR (dB) | mean steps run |")
    print("|---|---|---|---|---|---|")
    totals: dict[tuple[str, str], list[float]] = {}
    for t in spec.tasks:
        params = dict(t.params)
        if t.task == "encoder_cs":
            params["encoder"] = model.encoder
        physics = make_physics(t.task, model.image_shape, seed=spec.seed, **params)
        torch.manual_seed(spec.seed)
        with torch.no_grad():
            y = physics(x)
        for method in args.methods.split(","):
            options = dict(spec.method_options.get(method, {}))
            settings = [
                ("baseline", {}),
                ("early stop", {"early_stop_tol": args.tol, "patience": args.patience}),
            ]
            if t.name in autocast_tasks:
                settings.append(("bf16 autocast", {"autocast": True}))
            for name, extra in settings:
                solver = METHODS.build(method, model=model, **options, **extra)
                t0 = time.perf_counter()
                result = solver.solve(y, physics)
                wall = time.perf_counter() - t0
                score = psnr(result.x, x).mean().item()
                steps = result.steps_run.float().mean().item()
                totals.setdefault((method, name), [0.0, 0.0, 0])
                if name != "bf16 autocast":
                    agg = totals[(method, name)]
                    agg[0] += wall
                    agg[1] += score
                    agg[2] += 1
                print(
                    f"| {t.name} | {method} | {name} | {wall:.2f} | {score:.2f} | {steps:.0f} |",
                    flush=True,
                )
    print()
    for method in args.methods.split(","):
        base, early = totals[(method, "baseline")], totals[(method, "early stop")]
        print(
            f"- {method}, all {base[2]} tasks: {base[0]:.1f} s -> {early[0]:.1f} s with early "
            f"stopping ({100 * (1 - early[0] / base[0]):.0f} % saved); mean PSNR "
            f"{base[1] / base[2]:.2f} -> {early[1] / early[2]:.2f} dB"
        )


if __name__ == "__main__":
    main()
