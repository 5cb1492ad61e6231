"""Images restored per second by the batched latent search (GE and CSGM) at batch sizes 1 / 8 /
64 / 256, at 28 x 28 and 64 x 64, against deepinv's ``CSGMGenerator`` called image by image and
the reference procedure (best of 1000 random starts, then Adam, one image at a time), all in one
run on the same generators; plus FLOPs per iteration and the fraction of this machine's measured
float32 matmul peak that the solve loop reaches.

Problems: denoising (A = identity, Gaussian noise, sigma 0.1).

- 28 x 28: the shipped ``mnist5k`` model (DCGAN generator + conv encoder), the first test digits;
  PSNR against the clean digits (computed after solving; no method sees them).
- 64 x 64 x 3: an UNTRAINED DCGAN generator (``--width64``, its BatchNorm statistics set from its
  own samples) and an untrained conv encoder (the GE paper's GE1: depth 4, width 16, m = 128), built
  with ``generative_encoder.models.build_network``; the clean images are G(z) of random latents.
  Only the speed means something there, not the PSNR.

Rows (``restarts=1`` everywhere, so every row does the same work per image and iteration):

- ``ge`` / ``csgm``, batch B: our methods (``METHODS.build``; the GE paper's Adam, lr 0.1, the
  methods' latent prior, N(0, I) start, best iterate) on B problems in one call.
- ``deepinv CSGMGenerator``: one call per image, its own settings (lr 1e-2, no prior, U[-1, 1]
  start, last iterate), ``inf_tol=0`` so that it runs every iteration, the generator frozen as our
  engine freezes it (``--stock-n`` images also as it comes, parameters trainable).
- ``reference``: the GE authors' procedure, one image at a time: the GE objective of 1000 random
  N(0, I) candidates (one batched forward, no gradient), the best one as the start, then a plain
  Adam loop (lr 0.1) on that one latent. The reference runs 10,000 Adam iterations; here it runs
  as many as the other rows (``--iters``), i.e. 20x fewer than the reference at the default 500.

Every row is warmed up first (a few iterations at its batch size), then timed end to end with
``time.perf_counter``. With ``--timed-iters K`` (K < ``--iters``) every row runs K iterations and
its images/s is extrapolated to ``--iters`` (the cost per iteration is constant: no early stopping
here; for the reference only its Adam part is scaled, the 1000 candidates are counted once); the
table says so. PSNR is only reported for rows that ran the full ``--iters``.

Usage (full table): python benchmarks/solve_throughput.py
Quick run:          python benchmarks/solve_throughput.py --iters 20 --batches 1,8 --peer-n 2 \\
    --ref-n 1 --width64 16
"""

from __future__ import annotations

import argparse
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from deepinv.models import CSGMGenerator
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from generative_encoder.data import get_dataset, stack_images
from generative_encoder.eval.metrics import psnr
from generative_encoder.io.checkpoints import ModelBundle, load_model
from generative_encoder.io.zoo import shipped_model_dir
from generative_encoder.methods import METHODS
from generative_encoder.methods.latent import GenerativeEncoder
from generative_encoder.models.registry import build_network
from generative_encoder.physics import make_physics
from generative_encoder.solve import SolveConfig, combine, frozen, latent_l2
from generative_encoder.training.gan import recalibrate_batchnorm

DEEPINV_LR = 1e-2
REFERENCE_CANDIDATES = 1000
REFERENCE_ITERS = 10_000
PAPER_LR = SolveConfig().lr


@dataclass
class Row:
    size: int
    method: str
    batch: int  # problems per call (1 for the image-by-image rows)
    images: int  # images solved in the timed run
    iters: int  # iterations each image ran in the timed run
    wall_s: float  # the timed run
    fixed_s: float = 0.0  # part of wall_s that does not scale with the iterations (reference)
    psnr_db: float | None = None
    flops: float | None = None  # per image and iteration

    def images_per_s(self, target_iters: int) -> float:
        scaled = self.fixed_s + (self.wall_s - self.fixed_s) * target_iters / self.iters
        return self.images / scaled


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--iters", type=int, default=500, help="iterations per image (%(default)s)")
    p.add_argument(
        "--timed-iters",
        type=str,
        default=None,
        help="iterations actually run, per size, e.g. '28:500,64:20' or '50' "
        "(default: --iters); images/s is extrapolated to --iters",
    )
    p.add_argument("--sizes", default="28,64", help="image sizes (%(default)s)")
    p.add_argument("--batches", default="1,8,64,256", help="batch sizes (%(default)s)")
    p.add_argument("--methods", default="ge,csgm", help="our methods (%(default)s)")
    p.add_argument(
        "--peer-n",
        type=str,
        default="28:256,64:2",
        help="images deepinv solves one by one, per size (%(default)s); at 28 px they "
        "are the problems of the PSNR comparison",
    )
    p.add_argument(
        "--stock-n",
        type=int,
        default=8,
        help="images deepinv also solves as it comes (trainable generator) (%(default)s)",
    )
    p.add_argument(
        "--ref-n",
        type=str,
        default="28:8,64:1",
        help="images of the reference procedure, per size (%(default)s)",
    )
    p.add_argument(
        "--width64",
        type=int,
        default=64,
        help="width of the 64 x 64 DCGAN generator (%(default)s; 64 is DCGAN's)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads (%(default)s)")
    p.add_argument(
        "--channels-last",
        type=int,
        default=1,
        choices=(0, 1),
        help="SolveConfig.channels_last of our rows (%(default)s)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="also profile 5 GE steps at the largest batch and 28 px (top operators)",
    )
    p.add_argument(
        "--ablate",
        type=int,
        default=0,
        metavar="ITERS",
        help="also time ITERS iterations of GE and CSGM at --ablate-batch and 28 px "
        "with channels_last and bf16 autocast on and off",
    )
    p.add_argument(
        "--ablate-batch", type=int, default=64, help="batch of the ablation (%(default)s)"
    )
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.batches = [int(b) for b in args.batches.split(",")]
    args.methods = args.methods.split(",")
    args.peer_n = per_size(args.peer_n, args.sizes)
    args.ref_n = per_size(args.ref_n, args.sizes)
    args.timed_iters = (
        per_size(args.timed_iters, args.sizes)
        if args.timed_iters
        else {s: args.iters for s in args.sizes}
    )
    return args


def per_size(spec: str, sizes: list[int]) -> dict[int, int]:
    """'28:256,64:2' -> {28: 256, 64: 2}; a bare number applies to every size."""
    if ":" not in spec:
        return {s: int(spec) for s in sizes}
    out = dict(tuple(int(v) for v in item.split(":")) for item in spec.split(","))
    return {s: out[s] for s in sizes}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    """Best dense float32 matmul rate (FLOP/s) of n x n @ n x n on this machine and thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def problems(size: int, n: int, args) -> tuple[ModelBundle, Tensor, Tensor, object]:
    """(model, clean x (n, C, S, S), noisy y, physics) of the denoising problems at this size."""
    if size == 28:
        bundle = load_model(shipped_model_dir())
        x = stack_images(get_dataset("mnist5k", "test"), range(n))
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(args.seed)
            G = build_network(
                "dcgan_generator", latent_dim=100, channels=3, image_size=size, width=args.width64
            )
            E = build_network(
                "conv_encoder", channels=3, image_size=size, code_dim=128, depth=4, width=16
            )
        recalibrate_batchnorm(G, n_batches=4, batch_size=64, seed=args.seed)
        G.eval(), E.eval()
        bundle = ModelBundle(
            info={
                "channels": 3,
                "image_size": size,
                "latent_dim": 100,
                "latent_dist": "normal",
                "dataset": "untrained",
            },
            generator=G,
            encoder=E,
        )
        with torch.no_grad():
            x = G(G.sample_latent(n, torch.Generator().manual_seed(args.seed + 7)))
    physics = make_physics("denoise", bundle.image_shape, seed=args.seed, sigma=0.1)
    torch.manual_seed(args.seed)
    y = physics(x)
    return bundle, x, y, physics


def build(method: str, bundle: ModelBundle, iters: int, channels_last: bool):
    return METHODS.build(
        method,
        model=bundle,
        steps=iters,
        restarts=1,
        lr=PAPER_LR,
        seed=0,
        channels_last=channels_last,
    )


def timed(fn) -> tuple[object, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def run_ours(method, bundle, x, y, physics, batch, iters, args) -> Row:
    solver = build(method, bundle, iters, bool(args.channels_last))
    build(method, bundle, min(iters, 3), bool(args.channels_last))(y[:batch], physics)  # warm-up
    x_hat, wall = timed(lambda: solver(y[:batch], physics))
    return Row(
        x.shape[-1], method, batch, batch, iters, wall, psnr_db=psnr(x_hat, x[:batch]).mean().item()
    )


def run_deepinv(bundle, x, y, physics, n, iters, stock: bool) -> tuple[Row, Tensor]:
    G = bundle.generator
    peer = CSGMGenerator(
        backbone_generator=G, inf_max_iter=iters, inf_tol=0.0, inf_lr=DEEPINV_LR
    ).eval()

    def solve(k: int) -> Tensor:
        out = []
        for i in range(k):
            torch.manual_seed(i)  # deepinv draws with torch.rand
            out.append(peer(y[i : i + 1], physics))
        return torch.cat(out).detach()

    if stock:
        solve(1)
        x_hat, wall = timed(lambda: solve(n))
        G.zero_grad(set_to_none=True)
    else:
        with frozen(G):
            solve(1)
            x_hat, wall = timed(lambda: solve(n))
    name = "deepinv CSGMGenerator" + (" (stock)" if stock else "")
    return Row(
        x.shape[-1], name, 1, n, iters, wall, psnr_db=psnr(x_hat, x[:n]).mean().item()
    ), x_hat


def ge_loss(bundle, y, physics):
    """The GE objective with the method's prior, per row, for targets y (N, ...)."""
    solver = build("ge", bundle, 1, False)
    data, networks = solver.data_term(y, physics, 1)
    return combine(data, latent_l2(GenerativeEncoder.default_latent_weight)), networks


def run_reference(bundle, x, y, physics, n, iters, args) -> Row:
    """Best of 1000 N(0, I) starts by the GE objective, then plain Adam; one image at a time."""
    G = bundle.generator

    def one(i: int, steps: int) -> tuple[Tensor, float]:
        loss, _ = ge_loss(bundle, y[i : i + 1].expand(REFERENCE_CANDIDATES, *y.shape[1:]), physics)
        rng = torch.Generator().manual_seed(args.seed + i)
        t0 = time.perf_counter()
        with torch.no_grad():
            candidates = torch.randn(REFERENCE_CANDIDATES, G.latent_dim, generator=rng)
            start = candidates[loss(G(candidates), candidates).argmin()].clone()
        t_candidates = time.perf_counter() - t0
        single, _ = ge_loss(bundle, y[i : i + 1], physics)
        z = start[None].requires_grad_(True)
        opt = torch.optim.Adam([z], lr=PAPER_LR)
        best, best_z = float("inf"), z.detach().clone()
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            objective = single(G(z), z)
            objective.sum().backward()
            value = objective.item()  # the reference reads its loss every step
            if value < best:
                best, best_z = value, z.detach().clone()
            opt.step()
        with torch.no_grad():
            return G(best_z), t_candidates

    with frozen(G, bundle.encoder):
        one(0, min(iters, 3))  # warm-up
        t0 = time.perf_counter()
        results = [one(i, iters) for i in range(n)]
        wall = time.perf_counter() - t0
    x_hat = torch.cat([r[0] for r in results])
    return Row(
        x.shape[-1],
        "reference (1000 starts + Adam)",
        1,
        n,
        iters,
        wall,
        fixed_s=sum(r[1] for r in results),
        psnr_db=psnr(x_hat, x[:n]).mean().item(),
    )


def flops_per_image_iteration(method, bundle, y, physics) -> float:
    """FLOPs of one iteration (forward + backward to z) per image, by FlopCounterMode, on 2 rows."""
    solver = build(method, bundle, 1, False)
    data, networks = solver.data_term(y[:2], physics, 1)
    loss = combine(data, latent_l2(solver.latent_weight))
    G = bundle.generator
    with frozen(G, *networks):
        z = torch.randn(2, G.latent_dim, requires_grad=True)
        with FlopCounterMode(display=False) as counter:
            loss(G(z), z).sum().backward()
    return counter.get_total_flops() / 2


def profile_ge(bundle, y, physics, batch, args) -> None:
    from torch.profiler import ProfilerActivity, profile

    solver = build("ge", bundle, 5, bool(args.channels_last))
    solver(y[:batch], physics)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        solver(y[:batch], physics)
    print(f"\nProfile: 5 GE iterations at batch {batch}, 28 px, top operators by self CPU time")
    print(
        prof.key_averages().table(
            sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=40
        )
    )


def ablate(bundle, y, physics, batch, iters, args) -> None:
    print(f"\nAblation at 28 px, batch {batch}, {iters} iterations: ms per image and iteration")
    print("| method | channels_last | bf16 autocast | ms / image-iteration |")
    print("|---|---|---|---|")
    for method in args.methods:
        for cl in (True, False):
            for ac in (False, True):
                solver = METHODS.build(
                    method, model=bundle, steps=iters, restarts=1, channels_last=cl, autocast=ac
                )
                METHODS.build(
                    method, model=bundle, steps=2, restarts=1, channels_last=cl, autocast=ac
                )(y[:batch], physics)
                _, wall = timed(lambda: solver(y[:batch], physics))
                print(f"| {method} | {cl} | {ac} | {wall / batch / iters * 1e3:.3f} |", flush=True)


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    peak = matmul_peak()
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), CPU: {cpu_name()}, "
        f"measured float32 matmul peak (2048^3): {peak / 1e9:.1f} GFLOP/s",
        flush=True,
    )
    rows: list[Row] = []
    peers: dict[int, Row] = {}
    notes = []
    for size in args.sizes:
        iters = args.timed_iters[size]
        n = max(args.batches + [args.peer_n[size], args.ref_n[size], args.ablate_batch, 2])
        bundle, x, y, physics = problems(size, n, args)
        flops = {m: flops_per_image_iteration(m, bundle, y, physics) for m in args.methods}
        flops["deepinv CSGMGenerator"] = flops["deepinv CSGMGenerator (stock)"] = (
            flops_per_image_iteration("csgm", bundle, y, physics)
        )
        flops["reference (1000 starts + Adam)"] = flops_per_image_iteration(
            "ge", bundle, y, physics
        )
        peer, peer_x = run_deepinv(bundle, x, y, physics, args.peer_n[size], iters, stock=False)
        peers[size] = peer
        size_rows = [peer]
        print(f"[{size} px] deepinv: {peer.wall_s:.1f} s for {peer.images} images", flush=True)
        if args.stock_n and size == 28:
            size_rows.append(run_deepinv(bundle, x, y, physics, args.stock_n, iters, True)[0])
        size_rows.append(run_reference(bundle, x, y, physics, args.ref_n[size], iters, args))
        print(f"[{size} px] reference: {size_rows[-1].wall_s:.1f} s", flush=True)
        for method in args.methods:
            for batch in args.batches:
                row = run_ours(method, bundle, x, y, physics, batch, iters, args)
                size_rows.append(row)
                print(f"[{size} px] {method} batch {batch}: {row.wall_s:.1f} s", flush=True)
        for r in size_rows:
            r.flops = flops[r.method]
        rows += size_rows
        if size == 28 and iters == args.iters:
            k = peer.images
            for method in args.methods:
                full = [r for r in size_rows if r.method == method and r.batch >= k]
                if full:
                    solver = build(method, bundle, args.iters, bool(args.channels_last))
                    ours = (
                        psnr(solver(y[:k], physics), x[:k]).mean().item()
                        if full[0].batch != k
                        else full[0].psnr_db
                    )
                    notes.append(
                        f"28 px, the same {k} problems: {method} (batched) "
                        f"{ours:.2f} dB vs deepinv {peer.psnr_db:.2f} dB"
                    )
        if size == 28 and args.profile:
            profile_ge(bundle, y, physics, max(args.batches), args)
        if size == 28 and args.ablate:
            ablate(bundle, y, physics, args.ablate_batch, args.ablate, args)

    target = args.iters
    header = [
        "size",
        "method",
        "batch",
        "images",
        "iters run",
        f"images/s at {target} its",
        "vs deepinv",
        "MFLOP / image-iter",
        "% of matmul peak",
        "mean PSNR (dB)",
    ]
    lines = []
    for r in rows:
        ips = r.images_per_s(target)
        achieved = r.flops * ips * target
        lines.append(
            [
                f"{r.size}",
                r.method,
                str(r.batch),
                str(r.images),
                str(r.iters),
                f"{ips:.3g}",
                f"{ips / peers[r.size].images_per_s(target):.2f}x",
                f"{r.flops / 1e6:.2f}",
                f"{100 * achieved / peak:.1f}",
                f"{r.psnr_db:.2f}" if r.iters == target and r.size == 28 else "-",
            ]
        )
    widths = [max(len(c) for c in col) for col in zip(header, *lines)]

    def fmt(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    print()
    print(fmt(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for line in lines:
        print(fmt(line))
    print()
    for size in args.sizes:
        if args.timed_iters[size] != target:
            print(
                f"- {size} px: every row ran {args.timed_iters[size]} iterations; images/s is "
                f"extrapolated to {target} (reference: its 1000 candidates counted once)"
            )
    print(
        f"- reference: {REFERENCE_CANDIDATES} candidates, then {target} Adam iterations, "
        f"scaled down from the reference's {REFERENCE_ITERS} ({REFERENCE_ITERS // target}x "
        "more iterations, so about that many times fewer images/s)"
    )
    if 64 in args.sizes:
        print(
            f"- 64 px: untrained DCGAN generator (width {args.width64}, latent 100) and "
            "untrained conv encoder (depth 4, width 16, m 128): timing only, PSNR not shown"
        )
    print(
        f"- our rows: restarts 1, lr {PAPER_LR}, channels_last={bool(args.channels_last)}; "
        f"deepinv: lr {DEEPINV_LR}, generator frozen (stock: trainable, as it comes)"
    )
    for note in notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
