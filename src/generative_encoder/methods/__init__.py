"""Named reconstructors, each called as ``method(y, physics) -> x_hat`` (deepinv's convention).

``METHODS.build(name, model=bundle, **options)`` makes one; ``METHODS.names()`` lists them.
GAN-prior methods (``ge``, ``ge0``, ``csgm``, ``autoencoder``, ``aegan``, ``yeh``, ``lvr``,
``lvr_sa``) need a trained model bundle; classical baselines (``bm3d``, ``tv``, ``lasso_dct``,
...) ignore it.
"""

from . import classical, latent, lvr, yeh  # noqa: F401  (importing registers the methods)
from .registry import METHODS

__all__ = ["METHODS"]
