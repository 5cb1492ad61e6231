"""Terms that methods compose into a ``LossFn``: each maps (x (N, C, H, W), z (N, d)) to (N,).

Targets are per row: expand per-problem targets (B, ...) with ``expand_targets(t, restarts)``.

Every term here is a :class:`RowLoss`: besides being called, it can ``select(rows)``, the same
loss restricted to some rows (their targets only). The engine uses that to drop rows that have
converged from the batch (early stopping); a plain function works too, without the dropping.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

from ..errors import ConfigError

LossFn = Callable[[Tensor, Tensor], Tensor]
"""``loss_fn(x, z) -> (N,)``: x (N, C, H, W) = G(z), z (N, d); one loss per row."""


class RowLoss:
    """A per-row loss ``(x (N, C, H, W), z (N, d)) -> (N,)`` whose per-row data can be subset.

    fn(x, z, *tensors): the loss, given the per-row tensors (each (N, ...), row i of each
        belonging to row i of x); ``select(rows)`` keeps rows ``rows`` (a (K,) index tensor) of
        each of them, so the selected loss takes K rows.
    parts: the RowLoss terms this one sums (``combine``); selected with it.
    """

    def __init__(
        self, fn: Callable[..., Tensor], *tensors: Tensor, parts: tuple["RowLoss", ...] = ()
    ):
        self.fn, self.tensors, self.parts = fn, tensors, parts

    def __call__(self, x: Tensor, z: Tensor) -> Tensor:
        return self.fn(x, z, *self.tensors)

    def select(self, rows: Tensor) -> "RowLoss":
        """The same loss on rows ``rows`` only (index tensor (K,) into the current rows)."""
        tensors = tuple(t.index_select(0, rows.to(t.device)) for t in self.tensors)
        parts = tuple(p.select(rows) for p in self.parts)
        if parts:
            return RowLoss(_summed(parts), parts=parts)
        return RowLoss(self.fn, *tensors)


def selectable(loss: LossFn) -> bool:
    """Whether the engine can restrict ``loss`` to some rows (a RowLoss made only of RowLosses)."""
    return isinstance(loss, RowLoss) and all(selectable(p) for p in loss.parts)


def expand_targets(targets: Tensor, restarts: int) -> Tensor:
    """Per-problem targets (B, ...) -> per-row targets (B*R, ...), a problem's restarts adjacent."""
    return targets.repeat_interleave(restarts, dim=0)


def _check_rows(name: str, target: Tensor, x: Tensor) -> None:
    if target.shape[0] != x.shape[0]:
        raise ValueError(
            f"{name} has {target.shape[0]} rows but the batch has {x.shape[0]}; "
            "expand per-problem targets with expand_targets(t, restarts)"
        )


def encoder_fidelity(
    encoder: nn.Module, match: Callable[[Tensor], Tensor], target_code: Tensor
) -> RowLoss:
    """GE's data term ||E(match(G(z))) - target_code||^2 per row; target_code (N, m).

    ``match`` is S, which puts G(z) where the encoder saw the degraded image (e.g. the same blur).
    Summed over the m code dims, as the paper's squared L2 norm: a mean would divide the term by m
    and silently rescale the lambda that balances it against ``latent_l2``.
    Pass the encoder to ``latent_search(networks=...)`` so that it runs frozen in eval mode.
    """

    def loss(x: Tensor, z: Tensor, target: Tensor) -> Tensor:
        _check_rows("target_code", target, x)
        code = encoder(match(x))
        return (code.to(target.dtype) - target).flatten(1).square().sum(1)  # (N,)

    return RowLoss(loss, target_code)


def image_fidelity(forward: Callable[[Tensor], Tensor], y: Tensor) -> RowLoss:
    """CSGM's data term ||A(G(z)) - y||^2 per row, summed over measurement dims; y (N, ...).

    ``forward`` must act on each row alone (the same operator for every row)."""

    def loss(x: Tensor, z: Tensor, target: Tensor) -> Tensor:
        _check_rows("y", target, x)
        return (forward(x).to(target.dtype) - target).flatten(1).square().sum(1)  # (N,)

    return RowLoss(loss, y)


def latent_l2(weight: float) -> RowLoss:
    """The prior term weight * ||z||^2 per row."""
    if weight < 0:
        raise ConfigError(f"weight must be >= 0, got {weight}")
    return RowLoss(lambda x, z: weight * z.square().sum(1))  # (N,)


def combine(*terms: LossFn) -> LossFn:
    """The sum of the terms, row by row (a RowLoss when every term is one)."""
    if not terms:
        raise ConfigError("combine needs at least one term, got none")
    if all(isinstance(t, RowLoss) for t in terms):
        return RowLoss(_summed(terms), parts=tuple(terms))
    return lambda x, z: sum(term(x, z) for term in terms)


def _summed(terms) -> Callable[..., Tensor]:
    return lambda x, z: sum(term(x, z) for term in terms)
