"""GE's pre-training phase: a GAN on the user's images, then an autoencoder whose encoder is
trained on real images and images sampled from the frozen generator. GAN families (DCGAN, BEGAN,
progressive GAN) share one loop (:mod:`.loop`) and differ in their objective (:mod:`.objectives`);
encoder kinds: conv (GE1), VAE, AEGAN."""

from .encoder import EncoderConfig, train_encoder
from .loop import GANConfig, train_gan

__all__ = ["GANConfig", "train_gan", "EncoderConfig", "train_encoder"]
