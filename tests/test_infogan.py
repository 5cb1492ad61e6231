"""InfoGAN's categorical latent (Chen et al. 2016): the prior, D's Q head, training and search."""

import pytest
import torch

from generative_encoder.data import get_dataset
from generative_encoder.errors import ConfigError, DataError
from generative_encoder.io.checkpoints import load_network, save_network
from generative_encoder.models.priors import latent_parts, sample_latent
from generative_encoder.models.registry import build_network
from generative_encoder.solve.engine import SolveConfig, latent_search
from generative_encoder.training import GANConfig, train_gan


def test_categorical_prior_is_one_hot_in_the_last_coordinates():
    z = sample_latent(4000, 14, "normal+cat4", torch.Generator().manual_seed(0))
    cat, cont = z[:, -4:], z[:, :-4]
    assert torch.equal(cat.sum(1), torch.ones(4000)) and set(cat.unique().tolist()) == {0.0, 1.0}
    share = cat.mean(0)
    assert (share - 0.25).abs().max() < 0.03  # categories drawn uniformly
    assert abs(cont.std() - 1) < 0.03 and abs(cont.mean()) < 0.03
    # the continuous part is the same draw as without categories (same generator stream)
    plain = sample_latent(4000, 14, "normal", torch.Generator().manual_seed(0))
    assert torch.equal(cont, plain[:, :-4])
    assert latent_parts("uniform+cat3") == ("uniform", 3)
    assert latent_parts("normal") == ("normal", 0)
    for bad in ("normal+cat1", "normal+catx", "cauchy+cat4", "normal+"):
        with pytest.raises(ConfigError, match="latent_dist must be one of"):
            latent_parts(bad)
    with pytest.raises(ConfigError, match="needs latent_dim > 10"):
        build_network("dcgan_generator", latent_dim=10, latent_dist="normal+cat10")


def test_q_head_gives_category_logits_and_round_trips(tmp_path):
    D = build_network("dcgan_discriminator", width=8, n_categories=5).eval()
    x = torch.rand(3, 1, 28, 28)
    logit, q = D(x, categories=True)
    assert logit.shape == (3,) and q.shape == (3, 5)
    assert torch.equal(D(x), logit)  # the plain call is the discriminator's logit alone
    save_network(tmp_path, "discriminator", D)
    loaded = load_network(tmp_path, "discriminator")
    assert torch.equal(loaded(x, categories=True)[1], q)
    assert "n_categories" not in build_network("dcgan_discriminator", width=8).kwargs


def test_infogan_training_makes_categories_tellable(tmp_path):
    """G and Q cooperate on the category term: its cross-entropy falls well below log 5 = 1.61
    (chance) within 150 tiny steps, and the saved D carries the Q head."""
    config = GANConfig(
        steps=150,
        batch_size=16,
        latent_dim=12,
        latent_dist="normal+cat5",
        width=8,
        sample_every=1000,
        checkpoint_every=1000,
        seed=0,
    )
    logs = []
    train_gan(
        get_dataset("mnist5k", "train"),
        tmp_path,
        config,
        on_step=lambda step, values: logs.append(values["loss_info"]),
    )
    first, last = sum(logs[:10]) / 10, sum(logs[-20:]) / 20
    assert first > 1.4 and last < 0.5 * first, (first, last)
    assert load_network(tmp_path, "discriminator").kwargs["n_categories"] == 5
    assert load_network(tmp_path, "generator").latent_dist == "normal+cat5"


def test_search_starts_from_the_generators_categorical_prior():
    G = build_network("dcgan_generator", latent_dim=12, width=4, latent_dist="normal+cat4")
    flat = lambda x, z: (x.flatten(1).sum(1) + z.sum(1)) * 0  # noqa: E731  zero gradient: z stays
    result = latent_search(G, flat, 2, SolveConfig(steps=1, restarts=3, seed=5))
    starts = result.restart_z[:, :, -4:]
    assert torch.equal(starts.sum(-1), torch.ones(2, 3))
    expected = sample_latent(3, 12, "normal+cat4", torch.Generator().manual_seed(5))
    assert torch.equal(result.restart_z[0], expected)


def test_class_labels_make_the_category_the_digit(tmp_path):
    """AC-GAN: with the labels, D's Q head learns the real digits' classes (its accuracy on test
    digits is far above the 10 % of chance after 150 tiny steps), which is what ties G's
    categories to digit classes."""
    config = GANConfig(
        steps=150,
        batch_size=32,
        latent_dim=16,
        latent_dist="normal+cat10",
        class_labels=True,
        width=8,
        sample_every=1000,
        checkpoint_every=1000,
        seed=0,
    )
    train_gan(get_dataset("mnist5k", "train"), tmp_path, config)
    D = load_network(tmp_path, "discriminator").eval()
    test = get_dataset("mnist5k", "test")
    x = torch.stack([test[i][0] for i in range(300)])
    labels = torch.tensor([test[i][1] for i in range(300)])
    with torch.no_grad():
        accuracy = (D(x, categories=True)[1].argmax(1) == labels).float().mean().item()
    assert accuracy > 0.5, accuracy


def test_class_labels_refuse_a_mismatched_set_up(tmp_path):
    with pytest.raises(ConfigError, match="class_labels needs a categorical latent"):
        GANConfig(class_labels=True)
    config = GANConfig(steps=1, latent_dim=12, latent_dist="normal+cat5", class_labels=True)
    with pytest.raises(ConfigError, match="has 10 classes but the latent's category has 5"):
        train_gan(get_dataset("mnist5k", "train"), tmp_path, config)
    unlabelled = [(torch.zeros(1, 28, 28), -1)] * 4
    with pytest.raises(DataError, match="unlabelled images"):
        train_gan(
            unlabelled,
            tmp_path,
            GANConfig(steps=1, latent_dim=12, latent_dist="normal+cat5", class_labels=True),
        )
