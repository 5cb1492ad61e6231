"""Terms that methods compose into a ``LossFn``: each maps (x (N, C, H, W), z (N, d)) to (N,).

Targets are per row: expand per-problem targets (B, ...) with ``expand_targets(t, restarts)``.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

from ..errors import ConfigError
from .engine import LossFn


def expand_targets(targets: Tensor, restarts: int) -> Tensor:
    """Per-problem targets (B, ...) -> per-row targets (B*R, ...), a problem's restarts adjacent."""
    return targets.repeat_interleave(restarts, dim=0)


def _check_rows(name: str, target: Tensor, x: Tensor) -> None:
    if target.shape[0] != x.shape[0]:
        raise ValueError(f"{name} has {target.shape[0]} rows but the batch has {x.shape[0]}; "
                         "expand per-problem targets with expand_targets(t, restarts)")


def encoder_fidelity(
    encoder: nn.Module, match: Callable[[Tensor], Tensor], target_code: Tensor
) -> LossFn:
    """GE's data term ||E(match(G(z))) - target_code||^2 per row; target_code (N, m).

    ``match`` is S, which puts G(z) where the encoder saw the degraded image (e.g. the same blur).
    Summed over the m code dims, as the paper's squared L2 norm: a mean would divide the term by m
    and silently rescale the lambda that balances it against ``latent_l2``.
    Pass the encoder to ``latent_search(networks=...)`` so that it runs frozen in eval mode.
    """

    def loss(x: Tensor, z: Tensor) -> Tensor:
        _check_rows("target_code", target_code, x)
        return (encoder(match(x)) - target_code).flatten(1).square().sum(1)    # (N,)

    return loss


def image_fidelity(forward: Callable[[Tensor], Tensor], y: Tensor) -> LossFn:
    """CSGM's data term ||A(G(z)) - y||^2 per row, summed over measurement dims; y (N, ...)."""

    def loss(x: Tensor, z: Tensor) -> Tensor:
        _check_rows("y", y, x)
        return (forward(x) - y).flatten(1).square().sum(1)                     # (N,)

    return loss


def latent_l2(weight: float) -> LossFn:
    """The prior term weight * ||z||^2 per row."""
    if weight < 0:
        raise ConfigError(f"weight must be >= 0, got {weight}")
    return lambda x, z: weight * z.square().sum(1)                              # (N,)


def combine(*terms: LossFn) -> LossFn:
    """The sum of the terms, row by row."""
    if not terms:
        raise ConfigError("combine needs at least one term, got none")
    return lambda x, z: sum(term(x, z) for term in terms)
