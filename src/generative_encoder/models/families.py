"""Encoder families: the one vocabulary for training (``genc train encoder --kind``), solving
(``encoder=`` of ``ge`` and ``autoencoder``, the ``encoder_cs`` task) and a model folder's files.

- ``ge1``: the GE journal's conv autoencoder (files ``encoder``, ``decoder``);
- ``vae``: a VAE whose E(x) is the posterior mean (``vae_encoder``, ``vae_decoder``);
- ``aegan``: the conv autoencoder trained with an adversarial loss on its reconstructions
  (``aegan_encoder``, ``aegan_decoder``);
- ``robust``: the conv autoencoder trained to decode the clean image from degraded inputs
  (``genc train encoder --kind robust --degradations ...``; ``robust_encoder``,
  ``robust_decoder``), so that GE's target E(x_dagger) points at the clean image;
- ``ge0``: the encoder half of a BEGAN discriminator (inside ``discriminator``; not trained by
  ``genc train encoder``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class Family:
    """name; the encoder's and decoder's network names in a model folder (None: inside the BEGAN
    discriminator); the encoder architecture ``genc train encoder`` builds; its log prefix."""

    name: str
    encoder: str | None
    decoder: str | None
    arch: str | None
    log: str | None

    @property
    def prefix(self) -> str:
        """File-name prefix of the family's networks: "" (``encoder``), "vae_" (``vae_encoder``)."""
        return self.encoder.removesuffix("encoder") if self.encoder else ""

    @property
    def regressor(self) -> str:
        """Network name of the family's latent regressor (amortized GE): ``regressor`` (ge1),
        ``vae_regressor``, ``ge0_regressor``."""
        return f"{self.prefix or ('' if self.encoder else 'ge0_')}regressor"


FAMILIES = {
    f.name: f
    for f in (
        Family("ge1", "encoder", "decoder", "conv_encoder", "encoder"),
        Family("vae", "vae_encoder", "vae_decoder", "vae_encoder", "vae"),
        Family("aegan", "aegan_encoder", "aegan_decoder", "conv_encoder", "aegan"),
        Family("robust", "robust_encoder", "robust_decoder", "conv_encoder", "robust"),
        Family("ge0", None, None, None, None),
    )
}
TRAINABLE = tuple(name for name, f in FAMILIES.items() if f.arch)
# networks of the trainable families besides GE1's, which a model folder may hold
EXTRA_NETWORK_NAMES = tuple(
    n for f in FAMILIES.values() if f.prefix for n in (f.encoder, f.decoder)
) + tuple(f.regressor for f in FAMILIES.values())


def family(name: str, trainable: bool = False) -> Family:
    """The family called ``name``; ConfigError naming the known ones otherwise."""
    known = TRAINABLE if trainable else tuple(FAMILIES)
    if name not in known:
        raise ConfigError(f"encoder family must be one of {', '.join(known)}, got {name!r}")
    return FAMILIES[name]
