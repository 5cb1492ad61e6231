"""Data consistency: bring a restoration x back into agreement with what was measured, y.

- ``paste`` (inpainting): the known pixels are y's, the others x's;
- ``blend`` (inpainting): x Poisson-blended into the known pixels (Yeh et al.'s last step);
- ``project`` (any linear physics): x + t A^dagger(y - A x), the back-projection of the
  measurement residual, with t = 1 when the measurements are noise-free (then A x' = y) and, with
  Gaussian noise of known sigma, the t in [0, 1] that leaves the residual the noise explains,
  ||A x' - y||^2 = n sigma^2 (the discrepancy principle; t = 0 when x already leaves less);
- ``none``: x as it is (the papers' G(z*));
- ``auto`` (the default): ``blend`` for inpainting, ``none`` for the rest. On training digits
  the projection raised PSNR but cost SSIM on every task it applies to (it puts the measurement
  noise back), blending raised both (``experiments/consistency.py``).

Every x is (B, C, H, W) in [0, 1] and so is the result.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from deepinv.physics import Inpainting, LinearPhysics, Physics
from torch import Tensor

from ..errors import ConfigError
from .noise import noise_sigma

CONSISTENCY = ("auto", "none", "paste", "blend", "project")
BLEND_TOL = 1e-6  # conjugate gradient: stop at this relative residual...
BLEND_MAX_ITER = 2000  # ...or after this many iterations


def check_consistency(how: str, physics: Physics | None = None) -> None:
    """ConfigError unless ``how`` is one of CONSISTENCY and applies to ``physics`` (when given)."""
    if how not in CONSISTENCY:
        raise ConfigError(f"consistency must be one of {', '.join(CONSISTENCY)}, got {how!r}")
    if physics is None or how in ("none", "auto"):
        return
    if how in ("paste", "blend") and not isinstance(physics, Inpainting):
        raise ConfigError(
            f"consistency={how} applies to inpainting only, got {type(physics).__name__}"
        )
    if how == "project" and not isinstance(physics, LinearPhysics):
        raise ConfigError(
            f"consistency=project needs a linear physics, got {type(physics).__name__}"
        )


def resolve_consistency(how: str, physics: Physics) -> str:
    """The step ``how`` means for ``physics``: ``auto`` resolved as the module says."""
    if how != "auto":
        return how
    return "blend" if isinstance(physics, Inpainting) else "none"


def make_consistent(x: Tensor, y: Tensor, physics: Physics, how: str) -> Tensor:
    """x brought into agreement with y by ``how`` (see the module)."""
    how = resolve_consistency(how, physics)
    check_consistency(how, physics)
    if how == "paste":
        mask = physics.mask.expand_as(x)
        return torch.where(mask > 0, y.expand_as(x), x)
    if how == "blend":
        return poisson_blend(x, y, physics.mask)
    if how == "project":
        return back_project(x, y, physics)
    return x


@torch.no_grad()
def back_project(x: Tensor, y: Tensor, physics: LinearPhysics) -> Tensor:
    """x + t A^dagger(y - A x), t per image as in the module; clamped to [0, 1]."""
    r = y - physics.A(x)  # (B, ...)
    # one image at a time: A^dagger may be an iterative solve whose stopping reads the batch
    step = torch.cat([physics.A_dagger(r[i : i + 1]) for i in range(len(r))])  # (B, C, H, W)
    sigma = noise_sigma(physics)
    if sigma is None:
        t = torch.ones(len(x), device=x.device, dtype=x.dtype)
    else:
        # A A^dagger r = r for a full-row-rank A, so the residual after the step is (1 - t) r
        kept = (y[0].numel() * sigma**2) / r.flatten(1).square().sum(1).clamp_min(1e-30)
        t = (1 - kept.sqrt()).clamp(0, 1)  # (B,)
    return (x + t.view(-1, *[1] * (x.dim() - 1)) * step).clamp(0, 1)


def poisson_blend(
    generated: Tensor,
    known: Tensor,
    mask: Tensor,
    *,
    tol: float = BLEND_TOL,
    max_iter: int = BLEND_MAX_ITER,
) -> Tensor:
    """Blend ``generated`` into ``known`` by solving Poisson's equation in the hole.

    generated, known (B, C, H, W); mask broadcastable to them, 1 = known pixel, 0 = hole. Returns f
    with f = known where mask is 1 (exactly: copied, not solved) and, in the hole,
    Laplacian(f) = Laplacian(generated) with the known pixels as Dirichlet boundary values
    (4-neighbour Laplacian; Neumann at the image border, i.e. pixels outside are not neighbours).
    Solved by conjugate gradient on the hole's Laplacian, all B x C planes at once. A hole plane
    with no known pixel around it has no boundary and keeps ``generated``.
    """
    hole = mask.expand_as(generated) == 0
    g = generated.detach().double()
    y = known.detach().double().expand_as(g)
    inside = torch.ones_like(g)
    hole_f = hole.double()

    def neighbours(t: Tensor) -> Tensor:
        """Sum over the 4 neighbours inside the image, (B, C, H, W)."""
        p = F.pad(t, (1, 1, 1, 1))
        return p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:]

    degree = neighbours(inside)  # 2, 3 or 4
    guidance = degree * g - neighbours(g)  # Laplacian of g
    rhs = hole_f * (guidance + neighbours((1 - hole_f) * y))  # boundary moves

    def apply(v: Tensor) -> Tensor:  # the Laplacian restricted to the hole (SPD), v zero outside
        return hole_f * (degree * v - neighbours(hole_f * v))

    has_boundary = (hole & (neighbours(1 - hole_f) > 0)).flatten(2).any(2)  # (B, C)
    solvable = has_boundary[..., None, None].double()
    rhs = rhs * solvable
    f = hole_f * g * solvable  # warm start
    r = rhs - apply(f)
    d = r.clone()
    rr = _dot(r, r)
    stop = (tol * torch.sqrt(_dot(rhs, rhs))).clamp_min(1e-30) ** 2
    for _ in range(max_iter):
        # each plane stops at its own tolerance: its result does not depend on its batch-mates
        active = rr > stop  # (B, C, 1, 1)
        if not bool(active.any()):
            break
        ad = apply(d)
        alpha = torch.where(active, rr / _dot(d, ad).clamp_min(1e-300), 0.0)
        f = f + alpha * d
        r = r - alpha * ad
        rr_new = _dot(r, r)
        d = torch.where(active, r + (rr_new / rr.clamp_min(1e-300)) * d, d)
        rr = rr_new
    filled = torch.where(solvable.bool(), f, g).to(generated.dtype).clamp(0, 1)
    return torch.where(hole, filled, known.expand_as(generated))


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Per-plane inner product, (B, C, H, W) x 2 -> (B, C, 1, 1)."""
    return (a * b).sum((-2, -1), keepdim=True)
