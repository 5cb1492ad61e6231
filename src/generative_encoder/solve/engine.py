"""The batched latent search: B problems x R restarts as one (B*R, d) latent tensor.

Row i belongs to problem i // R. The engine sees only a per-row loss, never a clean image, and picks
each problem's restart (and, with ``keep_best``, iterate) by that loss alone.
"""

from __future__ import annotations

import itertools
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..models.priors import latent_parts, sample_latent
from ..physics.seeds import CLIP_STREAM, stream_seed
from ..registry import check_finite_fields
from .terms import LossFn, selectable

OPTIMIZERS = ("adam", "lbfgs")
CLIPS = (None, "project", "stochastic")
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
    early_stop_tol: stop a row once its objective changed by less than this fraction over the
        last ``patience`` steps; None runs every row for ``steps``. With Adam and a loss built
        from the terms of :mod:`~generative_encoder.solve.terms`, stopped rows leave the batch,
        so the later steps cost less; otherwise they stay in it, frozen.
    patience: steps between early-stopping checks; each check is one host sync.
    keep_best: return each row's lowest-objective iterate rather than its last.
    snapshot_every: if > 0, keep G(z) of every row every k steps, for convergence plots made after
        solving (memory: about steps / k times the batch of images).
    clip: box strategy for uniform latents: None, "project" (clamp to [-1, 1] after each step) or
        "stochastic" (components that left the box are redrawn uniformly inside it, from a stream
        of the problem's own).
    seed: problem j's starts (and stochastic redraws) are seeded with ``seed + j`` unless
        ``latent_search`` gets ``seeds``.
    channels_last: run the networks' convolutions in channels-last layout: about 2x faster for
        a 28 x 28 DCGAN + encoder at batch 256 on a CPU (benchmarks/README.md), but oneDNN then
        rounds differently for different batch sizes, and Adam amplifies that, so a problem no
        longer gets the same answer alone as in a batch (0.14 apart in z after 40 GE steps).
        Off by default for that reason.
    autocast: evaluate G and the loss under bfloat16 autocast (the latents, the optimizer and the
        objectives stay float32). Off by default: on CPUs without native bf16 it is much slower;
        its effect on restoration PSNR is in benchmarks/README.md.
    """

    steps: int = 500
    lr: float = 0.1
    restarts: int = 2
    optimizer: str = "adam"
    early_stop_tol: float | None = None
    patience: int = 20
    keep_best: bool = True
    snapshot_every: int = 0
    clip: str | None = None
    seed: int = 0
    channels_last: bool = False
    autocast: bool = False

    def __post_init__(self):
        check_finite_fields(self)
        _require(self.steps >= 1, f"steps must be >= 1, got {self.steps}")
        _require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _require(self.restarts >= 1, f"restarts must be >= 1, got {self.restarts}")
        _require(
            self.optimizer in OPTIMIZERS,
            f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}",
        )
        tol = self.early_stop_tol
        _require(tol is None or tol > 0, f"early_stop_tol must be None or > 0, got {tol}")
        _require(self.patience >= 1, f"patience must be >= 1, got {self.patience}")
        _require(
            self.snapshot_every >= 0, f"snapshot_every must be >= 0, got {self.snapshot_every}"
        )
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
    generated (B, C, H, W): G(z) when a method's last step made ``x`` something else (its
        consistency step, LVR-SA's shift), else None.
    adapt_steps: with generator adaptation (:mod:`~generative_encoder.solve.adapt`), the steps
        each problem's chosen iterate took (B ints; 0: the search's own answer); z, x and
        objective are then that iterate's, x = G_b(z) with problem b's adapted weights.
    ilo_steps: with intermediate layer optimization (:mod:`~generative_encoder.solve.ilo`), the
        steps each problem's chosen iterate took (B ints; 0: the search's own answer); x and
        objective are then that iterate's, x = G_after(h), z stays the search's z*.
    members (B, K, C, H, W): with a method's ``ensemble`` of K > 1 solves per problem, each
        member's output; x is then their mean, generated the mean of theirs, and the other
        fields are member 0's (the run the method makes alone). None otherwise.
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
    generated: Tensor | None = None
    adapt_steps: list[int] | None = None
    ilo_steps: list[int] | None = None
    members: Tensor | None = None


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
        ``latent_dist`` ("normal": N(0, I), "uniform": U[-1, 1], "+catK": the last K
        coordinates a one-hot category at the start, then searched as continuous values).
    loss_fn: per-row loss (N,) for N = B*R rows, row i belonging to problem i // R. Rows are summed,
        not averaged, before backward, so a row's gradient does not depend on N. A
        :class:`~generative_encoder.solve.terms.RowLoss` (what the terms and ``combine`` build) lets
        Adam drop early-stopped rows from the batch; any other function works, with stopped rows
        kept in the batch (masked).
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
    line search reads the loss on the host at every evaluation. The only other host syncs are the
    early-stopping checks (one per ``patience`` steps).
    Networks run in eval mode with frozen parameters (and, with ``config.channels_last``, with
    their 4-D weights in channels-last layout); all of it is restored afterwards.
    """
    restarts, latent_dim, dist = config.restarts, generator.latent_dim, generator.latent_dist
    n_rows = n_problems * restarts
    _require(n_problems >= 1, f"n_problems must be >= 1, got {n_problems}")
    base = latent_parts(dist, latent_dim)[0]
    _require(
        config.clip is None or base == "uniform",
        f"clip={config.clip!r} needs a uniform-latent generator, got latent_dist={dist!r}",
    )
    if n_rows == 1 and selectable(loss_fn):  # see rowwise: a lone row runs beside its copy
        twice = latent_search(
            generator,
            loss_fn.select(torch.tensor([0, 0])),
            2,
            config,
            networks=networks,
            init=None if init is None else torch.cat([init, init]),
            seeds=problem_seeds(1, config, seeds) * 2,
            on_step=None if on_step is None else (lambda step, z: on_step(step, z[:1])),
        )
        return take_problems(twice, torch.tensor([0]))
    device, dtype = _device_and_dtype(generator)
    starts = _starts(n_problems, restarts, latent_dim, dist, config, init, seeds)  # (B, R, d)

    def evaluate(fn: LossFn, z: Tensor) -> tuple[Tensor, Tensor]:
        with _autocast(device, config.autocast):
            objective, x = _evaluate(generator, fn, z)
        return objective.to(dtype), x.to(dtype)

    with frozen(generator, *networks), _layout(config.channels_last, generator, *networks):
        clipper = _Clipper(config.clip, problem_seeds(n_problems, config, seeds), restarts)
        all_rows = torch.arange(n_rows, device=device)
        batch = _ActiveRows(
            clipper(starts.reshape(n_rows, latent_dim).to(device, dtype), all_rows),
            loss_fn,
            config,
            evaluate,
        )
        track = _Track(batch.z_all, config)
        steps_run = torch.zeros(n_rows, dtype=torch.long, device=device)  # (N,)
        reference = None  # early stopping: the objective at the last check
        for step in range(config.steps):
            objective, x, z_t = batch.step(clipper)
            steps_run[batch.rows] += 1
            track.add(step, objective, x, z_t, batch.rows)
            if on_step is not None:
                on_step(step + 1, batch.latents().view(n_problems, restarts, latent_dim))
            if config.early_stop_tol is not None and step % config.patience == 0:
                if reference is not None:
                    objective = batch.stop(
                        _converged(objective, reference, config.early_stop_tol), objective
                    )
                    if batch.done:
                        break
                reference = objective

        with torch.no_grad():
            z_all = batch.latents()
            objective, x = evaluate(loss_fn, z_all)  # the final iterate counts too
            track.add(step + 1, objective, x, z_all, all_rows, final=True)
            if config.keep_best:
                z_rows, objective_rows = track.best_z, track.best_objective
            else:
                z_rows, objective_rows = z_all, objective
            restart_z = z_rows.view(n_problems, restarts, latent_dim)  # (B, R, d)
            restart_objective = objective_rows.view(n_problems, restarts)  # (B, R)
            chosen = select_best(restart_objective)  # (B,)
            problems = torch.arange(n_problems, device=device)
            z_best = restart_z[problems, chosen]  # (B, d)
            x_best = rowwise(generator, z_best).contiguous()  # (B, C, H, W)

    snapshots = None
    if track.snapshots:
        snapshots = torch.stack(track.snapshots).view(-1, n_problems, restarts, *x.shape[1:])
        snapshots = snapshots[:, problems, chosen].contiguous()  # (S, B, C, H, W)
    return SearchResult(
        z=z_best,
        x=x_best,
        objective=restart_objective[problems, chosen],
        restart_z=restart_z,
        restart_objective=restart_objective,
        history=torch.stack(track.history).view(-1, n_problems, restarts),  # (T, B, R)
        history_steps=track.history_steps,
        steps_run=steps_run.view(n_problems, restarts),
        snapshots=snapshots,
        snapshot_steps=track.snapshot_steps,
    )


class _ActiveRows:
    """The rows still searched, their latents and their optimizer: one optimizer step at a time,
    and early stopping.

    With Adam, which is element-wise, stopped rows leave the batch (``rows`` shrinks; Adam's state
    is kept for the others), so later steps cost less; a loss that can ``select`` rows (a
    :class:`~generative_encoder.solve.terms.RowLoss`) is then evaluated on the remaining rows only,
    any other on every row, with gradients for the remaining ones. L-BFGS couples the rows (one
    line search, one curvature memory), so there every row stays in: stopped rows get no
    gradient and keep their latents.
    """

    def __init__(self, z: Tensor, loss_fn: LossFn, config: SolveConfig, evaluate):
        self.config, self.evaluate, self.loss_fn = config, evaluate, loss_fn
        self.z_all = z  # (N, d)
        self.rows = torch.arange(len(z), device=z.device)  # (K,) searched
        self.z = z.clone().requires_grad_(True)  # (K, d)
        self.shrinks = config.optimizer == "adam"
        self.selects = selectable(loss_fn)
        self.row_loss = loss_fn
        self.stopped = torch.zeros(len(z), dtype=torch.bool, device=z.device)  # (N,) L-BFGS
        self.z_hold: Tensor | None = None  # L-BFGS
        self.optimizer = _optimizer(self.z, config)
        self.done = False

    def latents(self) -> Tensor:
        """Every row's current latent (N, d), detached."""
        if self.shrinks:
            self.z_all[self.rows] = self.z.detach()
            return self.z_all
        return self.z.detach()

    def _objective(self) -> tuple[Tensor, Tensor]:
        """(objective (K,), x (K, C, H, W)) of the searched rows at their current latents."""
        if not self.shrinks or self.selects or len(self.rows) == len(self.z_all):
            return self.evaluate(self.row_loss, self.z)
        every = self.z_all.detach().index_put((self.rows,), self.z)  # (N, d)
        objective, x = self.evaluate(self.loss_fn, every)
        return objective[self.rows], x[self.rows]

    def step(self, clipper: "_Clipper") -> tuple[Tensor, Tensor, Tensor]:
        """One optimizer step; returns the objective (K,), x (K, C, H, W) and z (K, d) of the
        iterate before it (the one the objective scored)."""
        z_t = self.z.detach().clone()
        first: list[tuple[Tensor, Tensor]] = []

        def closure() -> Tensor:
            self.optimizer.zero_grad(set_to_none=True)
            objective, x = self._objective()
            loss = (
                objective.sum() if self.shrinks else torch.where(self.stopped, 0.0, objective).sum()
            )  # stopped rows get no gradient
            loss.backward()
            if not first:
                first.append((objective.detach(), x.detach()))
            return loss

        self.optimizer.step(closure)
        with torch.no_grad():
            self.z.copy_(clipper(self.z, self.rows))
            if self.z_hold is not None:
                self.z.copy_(torch.where(self.stopped[:, None], self.z_hold, self.z))
        return first[0][0], first[0][1], z_t

    def stop(self, converged: Tensor, objective: Tensor) -> Tensor:
        """Stop the rows ``converged`` (K,) (one host sync); returns ``objective`` (K,) for the
        rows still in the batch, the reference of the next check."""
        if not self.shrinks:
            self.stopped |= converged
            self.z_hold = self.z.detach().clone()
            self.done = bool(self.stopped.all())
            return objective
        keep = (~converged).nonzero().squeeze(1)
        self.z_all[self.rows] = self.z.detach()
        if len(keep) == 0:
            self.done = True
        elif len(keep) < len(self.rows):
            self.rows = self.rows[keep]
            self.z = self.z.detach()[keep].requires_grad_(True)
            self.optimizer = _select_adam(self.optimizer, self.z, keep, self.config)
            if self.selects:
                self.row_loss = self.loss_fn.select(self.rows)
        return objective[keep]


def take_problems(result: SearchResult, rows: Tensor) -> SearchResult:
    """The problems ``rows`` (an index tensor) of a search result, in that order."""
    return replace(
        result,
        z=result.z[rows],
        x=result.x[rows],
        objective=result.objective[rows],
        restart_z=result.restart_z[rows],
        restart_objective=result.restart_objective[rows],
        history=result.history[:, rows],
        steps_run=result.steps_run[rows],
        snapshots=None if result.snapshots is None else result.snapshots[:, rows],
        generated=None if result.generated is None else result.generated[rows],
        adapt_steps=None
        if result.adapt_steps is None
        else [result.adapt_steps[i] for i in rows.tolist()],
        ilo_steps=None
        if result.ilo_steps is None
        else [result.ilo_steps[i] for i in rows.tolist()],
        members=None if result.members is None else result.members[rows],
    )


class _Track:
    """Each row's best iterate, objective history and snapshots, kept on the device (no syncs).

    Rows dropped from the batch keep their last objective (and image) in the history (snapshots)
    until the final evaluation."""

    def __init__(self, z: Tensor, config: SolveConfig):
        self.snapshot_every = config.snapshot_every
        self.best_objective = torch.full_like(z[:, 0], float("inf"))  # (N,)
        self.best_z = z.clone()  # (N, d)
        self.last_objective = self.best_objective.clone()  # (N,)
        self.last_x: Tensor | None = None  # (N, C, H, W)
        self.history: list[Tensor] = []
        self.history_steps: list[int] = []
        self.snapshots: list[Tensor] = []
        self.snapshot_steps: list[int] = []

    def add(
        self,
        step: int,
        objective: Tensor,
        x: Tensor,
        z: Tensor,
        rows: Tensor | None = None,
        final: bool = False,
    ) -> None:
        """Objective (K,), x (K, C, H, W) and z (K, d) of the iterate z_step, before its update, for
        rows ``rows`` (K,) of the N (all rows if None)."""
        if rows is None or len(rows) == len(self.best_z):
            better = objective < self.best_objective  # NaN never wins
            self.best_objective = torch.where(better, objective, self.best_objective)
            self.best_z = torch.where(better[:, None], z, self.best_z)
            self.last_objective = objective
        else:
            best = self.best_objective[rows]
            better = objective < best
            self.best_objective[rows] = torch.where(better, objective, best)
            self.best_z[rows] = torch.where(better[:, None], z, self.best_z[rows])
            self.last_objective = self.last_objective.clone()
            self.last_objective[rows] = objective
        self.history.append(self.last_objective)
        self.history_steps.append(step)
        if self.snapshot_every:
            if self.last_x is None or rows is None or len(rows) == len(self.best_z):
                self.last_x = x.contiguous()
            else:
                self.last_x = self.last_x.clone()
                self.last_x[rows] = x
            if final or step % self.snapshot_every == 0:
                self.snapshots.append(self.last_x)
                self.snapshot_steps.append(step)


def _converged(objective: Tensor, reference: Tensor, tol: float) -> Tensor:
    """(N,) True where the objective changed by less than a fraction tol since the reference."""
    tiny = torch.finfo(objective.dtype).tiny
    return (objective - reference).abs() < tol * reference.abs().clamp_min(tiny)


def _select_adam(
    old: torch.optim.Optimizer, z: Tensor, keep: Tensor, config: SolveConfig
) -> torch.optim.Optimizer:
    """A new Adam on z (K, d) that continues ``old`` for the rows ``keep`` (K,) of its parameter:
    Adam is element-wise, so those rows follow the same path as in the full batch."""
    new = _optimizer(z, config)
    (param,) = old.param_groups[0]["params"]
    state = old.state.get(param)
    if state:
        new.state[z] = {
            key: value[keep] if key in ("exp_avg", "exp_avg_sq") else value
            for key, value in state.items()
        }
    return new


@contextmanager
def _autocast(device: torch.device, enabled: bool) -> Iterator[None]:
    """bfloat16 autocast on the device's type when enabled (CPU and CUDA); else nothing."""
    if not enabled:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
        yield


@contextmanager
def _layout(channels_last: bool, *networks: nn.Module) -> Iterator[None]:
    """With channels_last, hold the networks' 4-D parameters and buffers in channels-last layout
    (convolutions then keep their activations in it: faster with oneDNN on CPU and with cuDNN);
    the original tensors are put back after, even on error. The values are the same."""
    if not channels_last:
        yield
        return
    tensors = [
        t
        for net in networks
        for t in itertools.chain(net.parameters(), net.buffers())
        if t.dim() == 4
    ]
    saved = [t.data for t in tensors]
    try:
        for t in tensors:
            t.data = t.data.contiguous(memory_format=torch.channels_last)
        yield
    finally:
        for t, data in zip(tensors, saved):
            t.data = data


def _optimizer(z: Tensor, config: SolveConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam([z], lr=config.lr)
    # One quasi-Newton iteration per step. max_eval must be set: torch also bounds the line search
    # by it, and its default for max_iter=1 (one evaluation) leaves no room for a line search.
    return torch.optim.LBFGS(
        [z], lr=config.lr, max_iter=1, max_eval=LBFGS_EVALS_PER_STEP, line_search_fn="strong_wolfe"
    )


def rowwise(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """fn(x) for a batch x (N, ...) whose rows ``fn`` treats independently, computed so that a row
    gets the same value in a batch of one as in any other: a CPU convolution takes another code
    path for a single image than for several, which rounds differently, so a lone row is run
    beside a copy of itself."""
    if len(x) != 1:
        return fn(x)
    return fn(torch.cat([x, x]))[:1]


def _evaluate(generator: nn.Module, loss_fn: LossFn, z: Tensor) -> tuple[Tensor, Tensor]:
    x = generator(z)  # (N, C, H, W)
    objective = loss_fn(x, z)  # (N,)
    if objective.shape != z.shape[:1]:
        raise ValueError(
            f"loss_fn must return one loss per row, shape ({z.shape[0]},); "
            f"got {tuple(objective.shape)}"
        )
    return objective, x


def _device_and_dtype(generator: nn.Module) -> tuple[torch.device, torch.dtype]:
    tensor = next(itertools.chain(generator.parameters(), generator.buffers()), None)
    if tensor is None:
        return torch.device("cpu"), torch.get_default_dtype()
    return tensor.device, tensor.dtype


def problem_seeds(n_problems: int, config: SolveConfig, seeds: Sequence[int] | None) -> list[int]:
    """One seed per problem: ``seeds``, or ``config.seed + j`` for problem j."""
    seeds = [config.seed + j for j in range(n_problems)] if seeds is None else list(seeds)
    _require(
        len(seeds) == n_problems,
        f"seeds must give one seed per problem ({n_problems}), got {len(seeds)}",
    )
    return seeds


def _starts(
    n_problems: int,
    restarts: int,
    latent_dim: int,
    latent_dist: str,
    config: SolveConfig,
    init: Tensor | None,
    seeds: Sequence[int] | None,
) -> Tensor:
    """(B, R, d) starting latents on the CPU: problem j's from its own generator, then ``init``."""
    seeds = problem_seeds(n_problems, config, seeds)
    starts = torch.stack([_draw(latent_dist, (restarts, latent_dim), seed) for seed in seeds])
    if init is None:
        return starts
    if init.shape == (n_problems, latent_dim):
        starts[:, 0] = init.detach().cpu()
        return starts
    _require(
        init.shape == starts.shape,
        f"init must have shape {tuple(starts.shape)} or {(n_problems, latent_dim)}, "
        f"got {tuple(init.shape)}",
    )
    return init.detach().to("cpu", starts.dtype, copy=True)  # the search must not write into init


def _draw(latent_dist: str, shape: tuple[int, int], seed: int) -> Tensor:
    return sample_latent(*shape, latent_dist, torch.Generator().manual_seed(int(seed)))


class _Clipper:
    """Keeps uniform latents in the box [-1, 1]^d (see ``SolveConfig.clip``).

    Stochastic clipping redraws from one CPU stream per problem (seeded from the problem's seed,
    apart from its starts' stream), drawn for all R restarts of every problem still in the batch
    at each step: a problem gets the same redraws alone or in any batch."""

    def __init__(self, how: str | None, seeds: list[int], restarts: int):
        self.how, self.restarts = how, restarts
        self.streams = []
        if how == "stochastic":
            self.streams = [
                torch.Generator().manual_seed(stream_seed(s, CLIP_STREAM)) for s in seeds
            ]
        self.problems = list(range(len(seeds)))  # problems with a row in the batch
        self.index: Tensor | None = None  # (K,) rows of the draw that the batch holds

    def select(self, rows: Tensor) -> None:
        """The batch now holds rows ``rows`` (K,), ascending (one host sync)."""
        rows_list = rows.tolist()
        self.problems = sorted({r // self.restarts for r in rows_list})
        slot = {p: i for i, p in enumerate(self.problems)}
        self.index = torch.tensor(
            [slot[r // self.restarts] * self.restarts + r % self.restarts for r in rows_list],
            device=rows.device,
        )

    def __call__(self, z: Tensor, rows: Tensor) -> Tensor:
        """z (K, d): the latents of rows ``rows`` (K,)."""
        if self.how == "project":
            return z.clamp(-1.0, 1.0)
        if self.how != "stochastic":
            return z
        d = z.shape[1]
        draw = torch.cat(
            [torch.rand(self.restarts, d, generator=self.streams[p]) for p in self.problems]
        )  # (P*R, d)
        draw = draw.to(z.device, z.dtype) * 2 - 1
        if self.index is not None:
            draw = draw[self.index]
        return torch.where(z.abs() > 1, draw, z)
