"""Named reconstructors, each called as ``method(y, physics) -> x_hat`` (deepinv's convention).

``METHODS.build(name, model=bundle, **options)`` makes one; ``METHODS.names()`` lists them.
GAN-prior methods (``ge``, ``ge0``, ``csgm``, ``autoencoder``, ``aegan``, ``yeh``, ``lvr``,
``lvr_sa``) need a trained model bundle, ``pnp`` its denoiser; classical baselines (``bm3d``,
``tv``, ``lasso_dct``, ...) and the untrained ``dip`` ignore it.
"""

from . import classical, latent, lvr, pnp, yeh  # noqa: F401  (importing registers the methods)
from .registry import METHODS

__all__ = ["METHODS"]
