"""Generative Encoder (GE): image restoration and compressed sensing with a GAN generator and a
learned encoder."""

__version__ = "0.1.0"
