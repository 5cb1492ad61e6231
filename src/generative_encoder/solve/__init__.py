"""One batched latent-optimization engine, shared by every GAN-prior method (GE, CSGM, ...).

B problems x R restarts are solved together as one (B*R, d) latent tensor: row i belongs to problem
i // R, so the restarts of a problem are adjacent and ``expand_targets`` (``repeat_interleave``)
turns per-problem targets into per-row ones. The engine never sees a clean image: a method hands it
a per-row loss ``loss_fn(x, z) -> (N,)``, usually composed from the terms in ``terms``,

    GE:    ||E(S(G(z))) - E(x_dagger)||^2 + lambda ||z||^2   (encoder_fidelity + latent_l2)
    CSGM:  ||A(G(z)) - y||^2 + lambda ||z||^2                (image_fidelity + latent_l2)

and each problem keeps the restart, and with ``keep_best`` the iterate, of lowest objective.

>>> import torch
>>> from torch import nn
>>> class Toy(nn.Linear):
...     latent_dim, latent_dist = 4, "normal"
...     def forward(self, z):
...         return torch.sigmoid(super().forward(z)).view(-1, 1, 4, 4)
>>> g = Toy(4, 16)
>>> y = g(torch.randn(3, 4)).detach()                      # (B, 1, 4, 4), in G's range
>>> config = SolveConfig(steps=50)
>>> loss = combine(image_fidelity(lambda x: x, expand_targets(y, config.restarts)), latent_l2(1e-3))
>>> result = latent_search(g, loss, n_problems=3, config=config)
>>> result.x.shape, result.history.shape
(torch.Size([3, 1, 4, 4]), torch.Size([51, 3, 2]))
"""

from .engine import SearchResult, SolveConfig, frozen, latent_search, rowwise, select_best
from .terms import LossFn, combine, encoder_fidelity, expand_targets, image_fidelity, latent_l2

__all__ = [
    "LossFn",
    "SearchResult",
    "SolveConfig",
    "frozen",
    "latent_search",
    "rowwise",
    "select_best",
    "combine",
    "encoder_fidelity",
    "expand_targets",
    "image_fidelity",
    "latent_l2",
]
