"""The batched latent search: B problems x R restarts as one (B*R, d) latent tensor.

Row i belongs to problem i // R. The engine sees only a per-row loss, never a clean image, and picks
each problem's restart (and, with ``keep_best``, iterate) by that loss alone.
"""

from __future__ import annotations

import itertools
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from ..errors import ConfigError

LossFn = Callable[[Tensor, Tensor], Tensor]
"""``loss_fn(x, z) -> (N,)``: x (N, C, H, W) = G(z), z (N, d); one loss per row."""

OPTIMIZERS = ("adam", "lbfgs")
CLIPS = (None, "project", "stochastic")
LATENT_DISTS = ("normal", "uniform")
LBFGS_EVALS_PER_STEP = 25  # loss evaluations per L-BFGS step, line search included


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


@dataclass(frozen=True)
class SolveConfig:
    """How to search the latent space. Defaults: the GE paper's Adam, lr 0.1, 500 steps, 2 starts.

    steps: optimizer steps per row at most (early stopping may end a row sooner).
    lr: Adam's learning rate, or L-BFGS's first trial step of each line search (1.0 is usual there).
    restarts: random starts per problem; the one of lowest objective wins.
    optimizer: "adam" (rows independent) or "lbfgs" (rows coupled, see ``latent_search``).
    early_stop_tol: freeze a row once its objective changed by less than this fraction over the
        last ``patience`` steps; None runs every row for ``steps``.
    patience: steps between early-stopping checks; each check is one host sync.
    keep_best: return each row's lowest-objective iterate rather than its last.
    history_every: record the objective every k steps (the best iterate is tracked at every step).
    snapshot_every: if > 0, keep G(z) of every row every k steps, for convergence plots made after
        solving (memory: about steps / k times the batch of images).
    clip: box strategy for uniform latents: None, "project" (clamp to [-1, 1] after each step) or
        "stochastic" (components that left the box are redrawn uniformly inside it; the redraws
        come from one stream for the whole batch, so they depend on a problem's place in it).
    seed: problem j's starts are seeded with ``seed + j`` unless ``latent_search`` gets ``seeds``;
        also seeds the redraws of stochastic clipping.
    """

    steps: int = 500
    lr: float = 0.1
    restarts: int = 2
    optimizer: str = "adam"
    early_stop_tol: float | None = None
    patience: int = 20
    keep_best: bool = True
    history_every: int = 1
    snapshot_every: int = 0
    clip: str | None = None
    seed: int = 0

    def __post_init__(self):
        _require(self.steps >= 1, f"steps must be >= 1, got {self.steps}")
        _require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _require(self.restarts >= 1, f"restarts must be >= 1, got {self.restarts}")
        _require(self.optimizer in OPTIMIZERS,
                 f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        tol = self.early_stop_tol
        _require(tol is None or tol > 0, f"early_stop_tol must be None or > 0, got {tol}")
        _require(self.patience >= 1, f"patience must be >= 1, got {self.patience}")
        _require(self.history_every >= 1, f"history_every must be >= 1, got {self.history_every}")
        _require(self.snapshot_every >= 0,
                 f"snapshot_every must be >= 0, got {self.snapshot_every}")
        _require(self.clip in CLIPS, f"clip must be one of {CLIPS}, got {self.clip!r}")


@dataclass
class SearchResult:
    """What ``latent_search`` found; every tensor is on the generator's device.

    z (B, d): each problem's chosen latent; x (B, C, H, W) = G(z); objective (B,): its objective.
    restart_z (B, R, d), restart_objective (B, R): what each restart returned (its best iterate
        with ``keep_best``, else its last).
    history (T, B, R): objective at ``history_steps``; the last entry is the final iterate.
    steps_run (B, R): optimizer steps each row took before it stopped.
    snapshots (S, B, C, H, W): G(z) of the chosen restart at ``snapshot_steps``, or None.
    """

    z: Tensor
    x: Tensor
    objective: Tensor
    restart_z: Tensor
    restart_objective: Tensor
    history: Tensor
    history_steps: list[int]
    steps_run: Tensor
    snapshots: Tensor | None
    snapshot_steps: list[int]


def select_best(values: Tensor) -> Tensor:
    """(B, R) objectives -> (B,) index of each problem's lowest; NaN never wins."""
    return values.nan_to_num(nan=float("inf")).argmin(dim=1)


@contextmanager
def frozen(*networks: nn.Module) -> Iterator[None]:
    """Run networks in eval mode with frozen parameters; restore both flags after, even on error."""
    modules = [m for net in networks for m in net.modules()]
    params = [p for net in networks for p in net.parameters()]
    training = [m.training for m in modules]
    requires_grad = [p.requires_grad for p in params]
    try:
        for net in networks:
            net.eval()
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for m, flag in zip(modules, training):
            m.training = flag
        for p, flag in zip(params, requires_grad):
            p.requires_grad_(flag)


@torch.enable_grad()
def latent_search(
    generator: nn.Module,
    loss_fn: LossFn,
    n_problems: int,
    config: SolveConfig,
    *,
    networks: Sequence[nn.Module] = (),
    init: Tensor | None = None,
    seeds: Sequence[int] | None = None,
    on_step: Callable[[int, Tensor], None] | None = None,
) -> SearchResult:
    """Minimize ``loss_fn(G(z), z)`` over z for B = ``n_problems`` problems x R restarts at once.

    generator: maps z (N, d) to images (N, C, H, W) in [0, 1]; exposes ``latent_dim`` and
        ``latent_dist`` ("normal": N(0, I), "uniform": U[-1, 1]^d).
    loss_fn: per-row loss (N,) for N = B*R rows, row i belonging to problem i // R. Rows are summed,
        not averaged, before backward, so a row's gradient does not depend on N.
    networks: the other networks loss_fn runs (e.g. the encoder); frozen with the generator.
    init: warm starts, (B, R, d) for every restart or (B, d) for restart 0 only (the other
        restarts stay random).
    seeds: problem j's R starts are drawn on the CPU from
        ``torch.Generator().manual_seed(seeds[j])`` (default ``config.seed + j``), so a problem gets
        the same starts alone or in a batch.
    on_step: called after every optimizer step with (steps done, z (B, R, d)), for progress bars
        and diagnostics; z is a detached view of the live latents: clone it to keep it, never
        modify it.

    With Adam, which is element-wise, every row follows the same path alone as in any batch. With
    L-BFGS the rows share one line search and one curvature memory, so they are coupled, and the
    line search reads the loss on the host at every evaluation.
    Networks run in eval mode with frozen parameters; both flags are restored afterwards.
    """
    restarts, latent_dim, dist = config.restarts, generator.latent_dim, generator.latent_dist
    n_rows = n_problems * restarts
    _require(n_problems >= 1, f"n_problems must be >= 1, got {n_problems}")
    _require(dist in LATENT_DISTS, f"latent_dist must be one of {LATENT_DISTS}, got {dist!r}")
    _require(config.clip is None or dist == "uniform",
             f"clip={config.clip!r} needs a uniform-latent generator, got latent_dist={dist!r}")
    device, dtype = _device_and_dtype(generator)
    starts = _starts(n_problems, restarts, latent_dim, dist, config, init, seeds)     # (B, R, d)

    with frozen(generator, *networks):
        clip_rng = None
        if config.clip == "stochastic":
            clip_rng = torch.Generator(device=device).manual_seed(config.seed)
        z = starts.reshape(n_rows, latent_dim).to(device, dtype)                 # (N, d)
        z = _clip(z, config.clip, clip_rng).requires_grad_(True)
        optimizer = _optimizer(z, config)
        stopped = torch.zeros(n_rows, dtype=torch.bool, device=device)          # (N,) early-stopped
        steps_run = torch.zeros(n_rows, dtype=torch.long, device=device)        # (N,)
        track = _Track(z.detach(), config)
        at_step_start: list[tuple[Tensor, Tensor]] = []  # (objective (N,), x) at z_t, pre-update

        def closure() -> Tensor:
            optimizer.zero_grad(set_to_none=True)
            objective, x = _evaluate(generator, loss_fn, z)
            loss = torch.where(stopped, 0.0, objective).sum()   # stopped rows get no gradient
            loss.backward()
            if not at_step_start:
                at_step_start.append((objective.detach(), x.detach()))
            return loss

        reference, z_hold = None, None  # early stopping: objective and z at the last check
        for step in range(config.steps):
            z_t = z.detach().clone()                                            # (N, d)
            at_step_start.clear()
            optimizer.step(closure)
            objective, x = at_step_start[0]
            with torch.no_grad():
                z.copy_(_clip(z, config.clip, clip_rng))
                if z_hold is not None:
                    z.copy_(torch.where(stopped[:, None], z_hold, z))   # stopped rows stay put
            steps_run += ~stopped
            track.add(step, objective, x, z_t)
            if on_step is not None:
                on_step(step + 1, z.detach().view(n_problems, restarts, latent_dim))
            if config.early_stop_tol is not None and step % config.patience == 0:
                if reference is not None:
                    stopped |= _converged(objective, reference, config.early_stop_tol)
                    z_hold = z.detach().clone()
                    if stopped.all():                                           # the one host sync
                        break
                reference = objective

        with torch.no_grad():
            objective, x = _evaluate(generator, loss_fn, z)         # the final iterate counts too
            track.add(step + 1, objective, x, z.detach(), final=True)
            if config.keep_best:
                z_rows, objective_rows = track.best_z, track.best_objective
            else:
                z_rows, objective_rows = z.detach(), objective
            restart_z = z_rows.view(n_problems, restarts, latent_dim)           # (B, R, d)
            restart_objective = objective_rows.view(n_problems, restarts)       # (B, R)
            chosen = select_best(restart_objective)                             # (B,)
            problems = torch.arange(n_problems, device=device)
            z_best = restart_z[problems, chosen]                                # (B, d)
            x_best = generator(z_best)                                          # (B, C, H, W)

    snapshots = None
    if track.snapshots:
        snapshots = torch.stack(track.snapshots).view(-1, n_problems, restarts, *x.shape[1:])
        snapshots = snapshots[:, problems, chosen]                              # (S, B, C, H, W)
    return SearchResult(
        z=z_best,
        x=x_best,
        objective=restart_objective[problems, chosen],
        restart_z=restart_z,
        restart_objective=restart_objective,
        history=torch.stack(track.history).view(-1, n_problems, restarts),    # (T, B, R)
        history_steps=track.history_steps,
        steps_run=steps_run.view(n_problems, restarts),
        snapshots=snapshots,
        snapshot_steps=track.snapshot_steps,
    )


class _Track:
    """Each row's best iterate, objective history and snapshots, kept on the device (no syncs)."""

    def __init__(self, z: Tensor, config: SolveConfig):
        self.history_every, self.snapshot_every = config.history_every, config.snapshot_every
        self.best_objective = torch.full_like(z[:, 0], float("inf"))                # (N,)
        self.best_z = z.clone()                                                 # (N, d)
        self.history: list[Tensor] = []
        self.history_steps: list[int] = []
        self.snapshots: list[Tensor] = []
        self.snapshot_steps: list[int] = []

    def add(self, step: int, objective: Tensor, x: Tensor, z: Tensor, final: bool = False) -> None:
        """Objective (N,), x (N, C, H, W) and z (N, d) of the iterate z_step, before its update."""
        better = objective < self.best_objective                                # NaN never wins
        self.best_objective = torch.where(better, objective, self.best_objective)
        self.best_z = torch.where(better[:, None], z, self.best_z)
        if final or step % self.history_every == 0:
            self.history.append(objective)
            self.history_steps.append(step)
        if self.snapshot_every and (final or step % self.snapshot_every == 0):
            self.snapshots.append(x)
            self.snapshot_steps.append(step)


def _converged(objective: Tensor, reference: Tensor, tol: float) -> Tensor:
    """(N,) True where the objective changed by less than a fraction tol since the reference."""
    tiny = torch.finfo(objective.dtype).tiny
    return (objective - reference).abs() < tol * reference.abs().clamp_min(tiny)


def _optimizer(z: Tensor, config: SolveConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam([z], lr=config.lr)
    # One quasi-Newton iteration per step. max_eval must be set: torch also bounds the line search
    # by it, and its default for max_iter=1 (one evaluation) leaves no room for a line search.
    return torch.optim.LBFGS([z], lr=config.lr, max_iter=1, max_eval=LBFGS_EVALS_PER_STEP,
                             line_search_fn="strong_wolfe")


def _evaluate(generator: nn.Module, loss_fn: LossFn, z: Tensor) -> tuple[Tensor, Tensor]:
    x = generator(z)                                                            # (N, C, H, W)
    objective = loss_fn(x, z)                                                   # (N,)
    if objective.shape != z.shape[:1]:
        raise ValueError(f"loss_fn must return one loss per row, shape ({z.shape[0]},); "
                         f"got {tuple(objective.shape)}")
    return objective, x


def _device_and_dtype(generator: nn.Module) -> tuple[torch.device, torch.dtype]:
    tensor = next(itertools.chain(generator.parameters(), generator.buffers()), None)
    if tensor is None:
        return torch.device("cpu"), torch.get_default_dtype()
    return tensor.device, tensor.dtype


def _starts(n_problems: int, restarts: int, latent_dim: int, latent_dist: str, config: SolveConfig,
            init: Tensor | None, seeds: Sequence[int] | None) -> Tensor:
    """(B, R, d) starting latents on the CPU: problem j's from its own generator, then ``init``."""
    seeds = [config.seed + j for j in range(n_problems)] if seeds is None else list(seeds)
    _require(len(seeds) == n_problems,
             f"seeds must give one seed per problem ({n_problems}), got {len(seeds)}")
    starts = torch.stack([_draw(latent_dist, (restarts, latent_dim), seed) for seed in seeds])
    if init is None:
        return starts
    if init.shape == (n_problems, latent_dim):
        starts[:, 0] = init.detach().cpu()
        return starts
    _require(init.shape == starts.shape,
             f"init must have shape {tuple(starts.shape)} or {(n_problems, latent_dim)}, "
             f"got {tuple(init.shape)}")
    return init.detach().to("cpu", starts.dtype, copy=True)  # the search must not write into init


def _draw(latent_dist: str, shape: tuple[int, ...], seed: int) -> Tensor:
    rng = torch.Generator().manual_seed(int(seed))
    if latent_dist == "normal":
        return torch.randn(shape, generator=rng)
    return torch.rand(shape, generator=rng) * 2 - 1


def _clip(z: Tensor, how: str | None, rng: torch.Generator | None) -> Tensor:
    """Keep uniform latents in the box [-1, 1]^d (see ``SolveConfig.clip``)."""
    if how == "project":
        return z.clamp(-1.0, 1.0)
    if how == "stochastic":
        redraw = torch.rand(z.shape, generator=rng, device=z.device, dtype=z.dtype) * 2 - 1
        return torch.where(z.abs() > 1, redraw, z)
    return z
