"""Images restored per second by our batched latent search, against deepinv's ``CSGMGenerator``
called image by image with the same generator and the same number of Adam iterations.

The problem: denoising of real mnist5k test digits (y = x + sigma n, A = identity). Rows:

1. ``deepinv CSGMGenerator``: one latent per call, no restarts, start z ~ U[-1, 1] drawn under
   ``torch.manual_seed(seed + i)`` for image i, Adam at ``--lr``, objective mean((A G(z) - y)^2)
   (``MCLoss`` = ``nn.MSELoss``), no latent prior, returns its last iterate. ``inf_tol=0`` so that
   it runs every iteration (its test ``err_perc < tol`` cannot hold for tol 0); checked on the
   warm-up call by counting generator calls. The wrapper is put in eval mode (in train mode its
   ``forward`` skips the optimisation and returns G of a random latent) and the generator's
   parameters are frozen as our engine freezes them; ``--also-stock-peer`` also times deepinv with
   them left trainable, as it comes, where every step also computes their gradients.
2. ``csgm, deepinv's settings``: our engine on all problems in one batch with deepinv's settings:
   the same start per image (restart 0 is deepinv's draw), lr, iterations, no prior, last iterate.
   Our data term is the sum of squares, deepinv's the mean: with no prior, the two differ by the
   constant factor n = C*H*W, to which Adam is invariant up to its eps (1e-8), so this row should
   return deepinv's images; the script reports the largest difference.
3. the same with ``--restarts`` uniform starts per problem, the lowest objective winning.
4. ``csgm, paper defaults`` and 5. ``ge, paper defaults``: the GE paper's Adam (lr 0.1), the
   methods' latent prior lambda ||z||^2, N(0, I) starts (our generators are trained on N(0, I)
   latents; deepinv draws U[-1, 1]), the best iterate, ``--restarts`` restarts.

Every row is warmed up once on the first images (deepinv on one, ours on two) with its full
settings, then timed end to end with ``time.perf_counter`` (``method(y, physics)``; for GE this
includes encoding the target). PSNR is against the clean digits, computed after solving.

Usage (full run): python benchmarks/solve_vs_deepinv.py --model DIR --out solve_vs_deepinv.json
Smoke run: python benchmarks/solve_vs_deepinv.py --model runs/mnist5k_w32 --n 8 --steps 20 \\
    --peer-n 2
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import deepinv
import torch
from deepinv.models import CSGMGenerator
from torch import Tensor, nn

from generative_encoder.data import get_dataset, stack_images
from generative_encoder.eval.metrics import psnr
from generative_encoder.io.checkpoints import ModelBundle, load_model
from generative_encoder.io.zoo import shipped_model_dir
from generative_encoder.methods import METHODS
from generative_encoder.physics import make_physics
from generative_encoder.solve import SolveConfig, frozen

DEEPINV_LR = 1e-2  # CSGMGenerator's default inf_lr
PAPER = SolveConfig()  # the GE paper's Adam: lr 0.1, best iterate
PEER_WARMUP_IMAGES = 1
OURS_WARMUP_IMAGES = 2
RESTART_STREAM = 1_000_003  # seeds the uniform starts of restarts 1.. apart from deepinv's draw


@dataclass
class Row:
    """One timed method: what it ran, how long it took, and how well it restored."""

    method: str
    problems: int
    restarts: int
    iterations: int
    lr: float
    latent_weight: float
    start: str
    iterate: str
    wall_s: float
    psnr_db: list[float] = field(repr=False)

    @property
    def images_per_s(self) -> float:
        return self.problems / self.wall_s

    @property
    def mean_psnr(self) -> float:
        return sum(self.psnr_db) / len(self.psnr_db)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--model", type=Path, default=None, help="model folder (default: the shipped mnist5k model)"
    )
    p.add_argument(
        "--n", type=int, default=256, help="problems: test digits 0..n-1 (default %(default)s)"
    )
    p.add_argument(
        "--restarts",
        type=int,
        default=2,
        help="restarts per problem in our rows (default %(default)s)",
    )
    p.add_argument(
        "--steps", type=int, default=500, help="Adam iterations, every row (default %(default)s)"
    )
    p.add_argument("--task", default="denoise", help="degradation, as make_physics names it")
    p.add_argument("--sigma", type=float, default=0.1, help="noise level (default %(default)s)")
    p.add_argument(
        "--lr",
        type=float,
        default=DEEPINV_LR,
        help="lr of deepinv and of our rows at its settings (default: deepinv's, %(default)s)",
    )
    p.add_argument(
        "--peer-n",
        type=int,
        default=None,
        help="images deepinv solves, the first ones (default: n); fewer saves time, "
        "its images/s is then measured on these alone",
    )
    p.add_argument(
        "--also-stock-peer",
        action="store_true",
        help="also time deepinv with the generator's parameters trainable, as it comes",
    )
    p.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (default %(default)s)"
    )
    p.add_argument("--seed", type=int, default=0, help="noise and latent starts")
    p.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    args = p.parse_args(argv)
    args.peer_n = args.n if args.peer_n is None else args.peer_n
    for name in ("n", "restarts", "steps", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if not args.lr > 0:
        p.error(f"--lr must be > 0, got {args.lr}")
    if not 1 <= args.peer_n <= args.n:
        p.error(f"--peer-n must be in [1, n={args.n}], got {args.peer_n}")
    if args.model is None:
        args.model = shipped_model_dir()
        if not args.model.is_dir():
            p.error(
                f"no shipped model at {args.model}; pass --model DIR (a trained model "
                "folder, e.g. runs/mnist5k_w32) or make it with scripts/train_mnist5k.sh"
            )
    return args


def machine_info(threads: int) -> dict:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "torch": torch.__version__,
        "deepinv": deepinv.__version__,
        "threads": threads,
        "cpu": cpu,
    }


def deepinv_start(latent_dim: int, seed: int) -> Tensor:
    """(1, d, 1, 1): the start ``CSGMGenerator.random_latent`` draws after manual_seed(seed)."""
    return torch.rand(1, latent_dim, 1, 1, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def uniform_starts(n: int, restarts: int, latent_dim: int, seed: int) -> Tensor:
    """(n, R, d) U[-1, 1] starts; problem i's restart 0 is deepinv's start for image i."""
    starts = [deepinv_start(latent_dim, seed + i).view(1, latent_dim) for i in range(n)]
    if restarts > 1:
        rng = torch.Generator().manual_seed(seed + RESTART_STREAM)
        others = torch.rand(n, restarts - 1, latent_dim, generator=rng) * 2 - 1
        return torch.cat([torch.stack(starts), others], dim=1)
    return torch.stack(starts)


def timed(fn: Callable[[], Tensor]) -> tuple[Tensor, float]:
    t0 = time.perf_counter()
    out = fn()
    return out.detach(), time.perf_counter() - t0


def solve_deepinv(peer: CSGMGenerator, y: Tensor, physics, seed: int) -> Tensor:
    """Image i of y (k, ...) restored by one deepinv call, its start seeded with seed + i."""
    out = []
    for i in range(y.shape[0]):
        torch.manual_seed(seed + i)  # CSGMGenerator draws with torch.rand
        out.append(peer(y[i : i + 1], physics))  # (1, C, H, W)
    return torch.cat(out)


def count_calls(net: nn.Module, fn: Callable[[], Tensor]) -> int:
    calls = [0]
    handle = net.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    try:
        fn()
    finally:
        handle.remove()
    return calls[0]


def run_deepinv(
    G: nn.Module, y: Tensor, x: Tensor, physics, args, stock: bool
) -> tuple[Row, Tensor]:
    """deepinv's CSGMGenerator on the first ``args.peer_n`` images, one call each."""
    peer = CSGMGenerator(
        backbone_generator=G, inf_max_iter=args.steps, inf_tol=0.0, inf_lr=args.lr
    ).eval()
    k = args.peer_n

    def solve(m: int) -> Tensor:
        return solve_deepinv(peer, y[:m], physics, args.seed)

    def run() -> tuple[Tensor, float]:
        calls = count_calls(G, lambda: solve(PEER_WARMUP_IMAGES))  # warm-up
        if calls != PEER_WARMUP_IMAGES * (args.steps + 1):
            raise RuntimeError(
                f"deepinv stopped early: {calls} generator calls for {args.steps} iterations"
            )
        return timed(lambda: solve(k))

    if stock:
        x_hat, wall = run()
        G.zero_grad(set_to_none=True)  # drop the parameter gradients deepinv accumulated
    else:
        with frozen(G):
            x_hat, wall = run()
    name = "deepinv CSGMGenerator" + (", stock" if stock else "")
    row = Row(
        name, k, 1, args.steps, args.lr, 0.0, "U[-1,1]", "last", wall, psnr(x_hat, x[:k]).tolist()
    )
    return row, x_hat


def run_ours(
    bundle: ModelBundle,
    y: Tensor,
    x: Tensor,
    physics,
    args,
    name: str,
    method: str,
    restarts: int,
    lr: float,
    latent_weight: float,
    keep_best: bool,
    init: Tensor | None,
) -> tuple[Row, Tensor]:
    """Our method on all ``args.n`` problems in one batch; init (n, R, d) or None (N(0, I))."""
    solver = METHODS.build(
        method,
        model=bundle,
        steps=args.steps,
        restarts=restarts,
        lr=lr,
        latent_weight=latent_weight,
        keep_best=keep_best,
        seed=args.seed,
    )

    def solve(m: int) -> Tensor:
        # A clone: latent_search optimises a full (B, R, d) init in place (it aliases the tensor),
        # so without one the timed run would start where the warm-up ended.
        return solver(y[:m], physics, init=None if init is None else init[:m].clone())

    solve(min(OURS_WARMUP_IMAGES, args.n))  # warm-up
    x_hat, wall = timed(lambda: solve(args.n))
    if init is None:
        start = {"normal": "N(0,I)", "uniform": "U[-1,1]"}[bundle.generator.latent_dist]
    else:
        start = "U[-1,1], restart 0 = deepinv's start"
    row = Row(
        name,
        args.n,
        restarts,
        args.steps,
        lr,
        latent_weight,
        start,
        "best" if keep_best else "last",
        wall,
        psnr(x_hat, x).tolist(),
    )
    return row, x_hat


def format_table(rows: list[Row], reference: Row) -> str:
    header = [
        "method",
        "problems",
        "restarts",
        "iterations",
        "wall s",
        "images/s",
        "mean PSNR (dB)",
        "images/s vs deepinv",
    ]
    lines = [
        [
            r.method,
            str(r.problems),
            str(r.restarts),
            str(r.iterations),
            f"{r.wall_s:.2f}",
            f"{r.images_per_s:.2f}",
            f"{r.mean_psnr:.2f}",
            f"{r.images_per_s / reference.images_per_s:.2f}x",
        ]
        for r in rows
    ]
    widths = [max(len(c) for c in col) for col in zip(header, *lines)]

    def fmt(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt(header), sep, *map(fmt, lines)])


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    info = machine_info(args.threads)
    print(f"torch {info['torch']}, {info['threads']} thread(s), CPU: {info['cpu']}")

    bundle = load_model(args.model)
    bundle.require("generator", "encoder")
    G = bundle.generator
    x = stack_images(get_dataset("mnist5k", "test"), range(args.n))  # (n, C, H, W)
    physics = make_physics(args.task, bundle.image_shape, seed=args.seed, sigma=args.sigma)
    with torch.no_grad():
        if not torch.allclose(physics.A(x[:1]), physics.A(x)[:1]):
            raise SystemExit(
                f"--task {args.task}: A differs between images of a batch, so "
                "deepinv's one-image calls would not solve the same problems"
            )
    y = physics(x)  # one noise draw
    print(
        f"model {args.model}; {args.task} sigma={args.sigma} on {args.n} mnist5k test digits; "
        f"PSNR of y: {psnr(y, x).mean():.2f} dB"
    )

    starts = uniform_starts(args.n, args.restarts, G.latent_dim, args.seed)  # (n, R, d)
    peer, peer_x = run_deepinv(G, y, x, physics, args, stock=False)
    rows = [peer]
    if args.also_stock_peer:
        rows.append(run_deepinv(G, y, x, physics, args, stock=True)[0])
    twin, twin_x = run_ours(
        bundle,
        y,
        x,
        physics,
        args,
        "csgm, deepinv's settings",
        "csgm",
        1,
        args.lr,
        0.0,
        False,
        starts[:, :1],
    )
    rows.append(twin)
    if args.restarts > 1:
        rows.append(
            run_ours(
                bundle,
                y,
                x,
                physics,
                args,
                f"csgm, deepinv's settings, {args.restarts} restarts",
                "csgm",
                args.restarts,
                args.lr,
                0.0,
                False,
                starts,
            )[0]
        )
    for method in ("csgm", "ge"):
        rows.append(
            run_ours(
                bundle,
                y,
                x,
                physics,
                args,
                f"{method}, paper defaults",
                method,
                args.restarts,
                PAPER.lr,
                METHODS.get(method).default_latent_weight,
                PAPER.keep_best,
                None,
            )[0]
        )

    k = args.peer_n
    twin_diff = (twin_x[:k] - peer_x).abs().max().item()
    print()
    print(format_table(rows, peer))
    print()
    for r in rows:
        print(
            f"- {r.method}: lr {r.lr:g}, latent weight {r.latent_weight:g}, start {r.start}, "
            f"{r.iterate} iterate"
        )
    print(
        f"- deepinv's images, against ours at its settings (same starts): largest pixel "
        f"difference {twin_diff:.2e}"
    )
    if k < args.n:
        print(
            f"- deepinv solved only the first {k} of the {args.n} problems: its images/s is "
            f"{k} / its wall time, its PSNR is over those {k} (ours at its settings on them: "
            f"{sum(twin.psnr_db[:k]) / k:.2f} dB); for all {args.n} it would take about "
            f"{peer.wall_s * args.n / k:.3g} s"
        )

    settings = {name: str(v) if isinstance(v, Path) else v for name, v in vars(args).items()}
    result = {
        "machine": info,
        "args": settings,
        "rows": [
            asdict(r) | {"images_per_s": r.images_per_s, "mean_psnr": r.mean_psnr} for r in rows
        ],
        "deepinv_vs_twin_max_abs_diff": twin_diff,
    }
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
