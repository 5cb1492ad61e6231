"""The batched latent search: recovery, restart and iterate choice, batch independence, clipping,
early stopping, network freezing and config checks, on a tiny generator (d = 8, 1x8x8 images)."""

import pytest
import torch
from torch import nn

from generative_encoder.errors import ConfigError
from generative_encoder.solve import (
    SolveConfig,
    combine,
    encoder_fidelity,
    expand_targets,
    image_fidelity,
    latent_l2,
    latent_search,
    select_best,
)

LATENT = 8


class TinyGenerator(nn.Module):
    """z (N, 8) -> images (N, 1, 8, 8) in [0, 1]. The BatchNorm couples rows unless in eval mode."""

    def __init__(self, latent_dist: str = "normal"):
        super().__init__()
        self.latent_dim, self.latent_dist = LATENT, latent_dist
        self.net = nn.Sequential(
            nn.Linear(LATENT, 32), nn.BatchNorm1d(32), nn.Tanh(), nn.Linear(32, 64)
        )

    def forward(self, z):
        return torch.sigmoid(self.net(z)).view(-1, 1, 8, 8)


@pytest.fixture
def generator():
    torch.manual_seed(0)
    return TinyGenerator()


def render(generator, z):
    """G(z) in eval mode, leaving the generator's mode as it was: the search must set it itself."""
    training = generator.training
    with torch.no_grad():
        images = generator.eval()(z)  # (N, 1, 8, 8)
    generator.train(training)
    return images


def fake_images(generator, n, seed=1):
    """Images in G's range, from latents the search does not start at."""
    return render(generator, torch.randn(n, LATENT, generator=torch.Generator().manual_seed(seed)))


def cs_operator(seed=2, m=32):
    """A Gaussian compressed-sensing matrix: 64 pixels -> m measurements."""
    matrix = torch.randn(m, 64, generator=torch.Generator().manual_seed(seed)) / m**0.5
    return lambda x: x.flatten(1) @ matrix.T  # (N, m)


def cs_loss(generator, n, restarts):
    forward = cs_operator()
    return image_fidelity(forward, expand_targets(forward(fake_images(generator, n)), restarts))


@pytest.mark.parametrize("optimizer, lr, steps", [("adam", 0.1, 400), ("lbfgs", 1.0, 30)])
def test_recovers_fake_images(generator, optimizer, lr, steps):
    config = SolveConfig(steps=steps, lr=lr, optimizer=optimizer, restarts=2)
    truth = fake_images(generator, 8)
    with torch.no_grad():  # callers may be in no_grad
        result = latent_search(generator, cs_loss(generator, 8, config.restarts), 8, config)
    assert result.x.shape == (8, 1, 8, 8) and result.z.shape == (8, LATENT)
    mse = (result.x - truth).square().flatten(1).mean(1)  # (B,)
    assert mse.max() <= 1e-4, mse


def test_chosen_restart_has_lowest_objective(generator):
    config = SolveConfig(steps=30, restarts=4)
    result = latent_search(generator, cs_loss(generator, 6, config.restarts), 6, config)
    assert result.restart_objective.shape == (6, 4) and result.restart_z.shape == (6, 4, LATENT)
    objectives = result.restart_objective
    assert not torch.allclose(objectives, objectives[:, :1]), "the test needs restarts that differ"
    torch.testing.assert_close(result.objective, result.restart_objective.min(dim=1).values)
    chosen = result.restart_objective.argmin(dim=1)
    torch.testing.assert_close(result.z, result.restart_z[torch.arange(6), chosen])
    torch.testing.assert_close(result.x, render(generator, result.z))


def test_select_best_ignores_nan():
    values = torch.tensor([[float("nan"), 2.0, 1.0], [0.5, float("nan"), 3.0]])
    assert select_best(values).tolist() == [2, 0]


def test_problem_solved_alone_or_in_a_batch_of_64_gives_the_same_z(generator):
    config = SolveConfig(steps=200, restarts=2)
    forward, j, seed = cs_operator(), 37, 1234
    targets = forward(fake_images(generator, 64))  # (64, 32)
    seeds = list(range(100, 164))
    seeds[j] = seed
    in_batch = image_fidelity(forward, expand_targets(targets, 2))
    on_its_own = image_fidelity(forward, expand_targets(targets[j : j + 1], 2))
    batch = latent_search(generator, in_batch, 64, config, seeds=seeds)
    alone = latent_search(generator, on_its_own, 1, config, seeds=[seed])
    torch.testing.assert_close(batch.restart_z[j], alone.restart_z[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(batch.z[j], alone.z[0], atol=1e-5, rtol=0)


def test_keep_best_returns_the_lowest_objective_of_the_history(generator):
    config = SolveConfig(steps=100, lr=0.8, restarts=2)  # lr high enough to oscillate
    result = latent_search(generator, cs_loss(generator, 4, 2), 4, config)
    assert result.history.shape == (101, 4, 2) and result.history_steps == list(range(101))
    lowest = result.history.min(dim=0).values  # (B, R)
    torch.testing.assert_close(result.restart_objective, lowest)
    assert (result.history[-1] > lowest * 1.01).any(), "the test needs a last iterate not the best"

    config = SolveConfig(steps=100, lr=0.8, restarts=2, keep_best=False)
    last = latent_search(generator, cs_loss(generator, 4, 2), 4, config)
    torch.testing.assert_close(last.restart_objective, last.history[-1])


def pull_out_of_the_box(x, z):
    return (z - 3.0).square().sum(1)  # (N,), optimum at z = 3


@pytest.mark.parametrize("clip", ["project", "stochastic", None])
def test_clip_keeps_uniform_latents_in_the_box_after_every_step(clip):
    torch.manual_seed(0)
    generator = TinyGenerator("uniform")
    largest = []
    config = SolveConfig(steps=50, clip=clip)
    result = latent_search(
        generator,
        pull_out_of_the_box,
        4,
        config,
        on_step=lambda step, z: largest.append(z.abs().max().item()),
    )
    assert len(largest) == 50
    if clip is None:
        assert max(largest) > 1.5
    else:
        assert max(largest) <= 1.0 and result.restart_z.abs().max() <= 1.0


def test_clip_needs_a_uniform_latent_generator(generator):
    with pytest.raises(ConfigError, match="clip='project' needs a uniform-latent generator"):
        latent_search(generator, pull_out_of_the_box, 1, SolveConfig(clip="project"))


def test_early_stop_ends_rows_sooner_with_nearly_the_same_answer(generator):
    loss = combine(cs_loss(generator, 4, 2), latent_l2(1e-3))
    full = latent_search(generator, loss, 4, SolveConfig(steps=400))
    path = []
    config = SolveConfig(steps=400, early_stop_tol=1e-3, patience=20)
    early = latent_search(generator, loss, 4, config, on_step=lambda _, z: path.append(z.clone()))
    assert (full.steps_run == 400).all() and (early.steps_run < 400).all()
    assert early.steps_run.unique().numel() > 1, "the test needs rows that stop at different checks"
    assert (early.steps_run % 20 == 1).all()  # stopped at a check, after that step
    path = torch.stack(path)  # (steps run, B, R, d)
    for b, r in torch.cartesian_prod(torch.arange(4), torch.arange(2)).tolist():
        stopped_at = early.steps_run[b, r] - 1  # index of its last step in path
        assert (path[stopped_at:, b, r] == path[stopped_at, b, r]).all(), "a stopped row moved"
    torch.testing.assert_close(early.objective, full.objective, atol=1e-5, rtol=1e-3)
    torch.testing.assert_close(early.x, full.x, atol=1e-3, rtol=0)


def test_networks_are_frozen_during_the_solve_and_restored_after_even_on_error(generator):
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(64, 4), nn.Dropout(0.5))
    generator.train()
    generator.net[0].bias.requires_grad_(False)
    flags = [
        (m.training, [p.requires_grad for p in m.parameters(recurse=False)])
        for net in (generator, encoder)
        for m in net.modules()
    ]
    seen = []

    def loss_fn(x, z):
        seen.append(any(m.training for net in (generator, encoder) for m in net.modules()))
        seen.append(any(p.requires_grad for net in (generator, encoder) for p in net.parameters()))
        return encoder_fidelity(encoder, lambda x: x, torch.zeros(len(x), 4))(x, z)

    def failing(x, z):
        loss_fn(x, z)
        raise RuntimeError("boom")

    latent_search(generator, loss_fn, 2, SolveConfig(steps=3), networks=[encoder])
    with pytest.raises(RuntimeError, match="boom"):
        latent_search(generator, failing, 2, SolveConfig(steps=3), networks=[encoder])
    assert not any(seen)
    assert flags == [
        (m.training, [p.requires_grad for p in m.parameters(recurse=False)])
        for net in (generator, encoder)
        for m in net.modules()
    ]
    assert all(p.grad is None for net in (generator, encoder) for p in net.parameters())


def test_terms_sum_over_dims_and_check_rows():
    x, z = torch.ones(4, 1, 2, 2), torch.full((4, 3), 2.0)
    code = torch.zeros(4, 4)
    encoded = encoder_fidelity(nn.Flatten(), lambda x: 3 * x, code)(x, z)  # 4 dims of 3^2
    torch.testing.assert_close(encoded, torch.full((4,), 36.0))
    fit = image_fidelity(lambda x: x, torch.zeros(4, 1, 2, 2))(x, z)  # 4 dims of 1^2
    torch.testing.assert_close(fit, torch.full((4,), 4.0))
    prior = combine(latent_l2(0.5), latent_l2(1.0))(x, z)  # 1.5 * 3 dims of 2^2
    torch.testing.assert_close(prior, torch.full((4,), 18.0))
    assert expand_targets(torch.arange(3), 2).tolist() == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="y has 2 rows but the batch has 4"):
        image_fidelity(lambda x: x, torch.zeros(2, 1, 2, 2))(x, z)


def test_starts_depend_on_the_seed_and_init_overrides_them(generator):
    config = SolveConfig(steps=1, lr=1e-9, keep_best=False)
    a = latent_search(generator, pull_out_of_the_box, 2, config, seeds=[5, 6])
    b = latent_search(generator, pull_out_of_the_box, 2, config, seeds=[6, 7])
    torch.testing.assert_close(a.restart_z[1], b.restart_z[0])
    warm = torch.full((2, LATENT), 0.25)
    c = latent_search(generator, pull_out_of_the_box, 2, config, init=warm, seeds=[5, 6])
    torch.testing.assert_close(c.restart_z[:, 0], warm)
    torch.testing.assert_close(c.restart_z[:, 1], a.restart_z[:, 1])


def test_snapshots_follow_the_chosen_restart(generator):
    config = SolveConfig(steps=25, restarts=3, snapshot_every=10, keep_best=False)
    result = latent_search(generator, cs_loss(generator, 2, 3), 2, config)
    assert result.snapshot_steps == [0, 10, 20, 25]
    assert result.snapshots.shape == (4, 2, 1, 8, 8)
    chosen = result.restart_objective.argmin(dim=1)
    starts = torch.stack(
        [torch.randn(3, LATENT, generator=torch.Generator().manual_seed(j)) for j in range(2)]
    )  # the default seeds: config.seed + j
    first = render(generator, starts[torch.arange(2), chosen])
    torch.testing.assert_close(result.snapshots[0], first)
    torch.testing.assert_close(result.snapshots[-1], result.x)  # keep_best=False: the last
    assert latent_search(generator, pull_out_of_the_box, 1, SolveConfig(steps=2)).snapshots is None


@pytest.mark.parametrize(
    "options, message",
    [
        ({"steps": 0}, "steps must be >= 1, got 0"),
        ({"lr": 0.0}, "lr must be > 0, got 0.0"),
        ({"restarts": 0}, "restarts must be >= 1, got 0"),
        ({"optimizer": "sgd"}, "optimizer must be one of .*, got 'sgd'"),
        ({"clip": "box"}, "clip must be one of .*, got 'box'"),
        ({"early_stop_tol": -1.0}, "early_stop_tol must be None or > 0, got -1.0"),
        ({"patience": 0}, "patience must be >= 1, got 0"),
        ({"snapshot_every": -1}, "snapshot_every must be >= 0, got -1"),
    ],
)
def test_bad_config_is_a_config_error_naming_the_value(options, message):
    with pytest.raises(ConfigError, match=message):
        SolveConfig(**options)


def test_loss_fn_must_return_one_loss_per_row(generator):
    with pytest.raises(ValueError, match=r"one loss per row, shape \(4,\); got \(\)"):
        latent_search(generator, lambda x, z: z.square().sum(), 2, SolveConfig(steps=1))


def test_init_is_left_unchanged():
    g = torch.nn.Linear(4, 16)
    g.latent_dim, g.latent_dist = 4, "normal"
    gen = lambda z: torch.sigmoid(g(z)).view(-1, 1, 4, 4)  # noqa: E731
    gen_module = _Wrap(g, gen)
    init = torch.randn(3, 2, 4)
    before = init.clone()
    y = torch.rand(3, 1, 4, 4)
    loss = image_fidelity(lambda x: x, expand_targets(y, 2))
    latent_search(gen_module, loss, 3, SolveConfig(steps=5), init=init)
    assert torch.equal(init, before)


class _Wrap(torch.nn.Module):
    def __init__(self, net, fn):
        super().__init__()
        self.net, self.fn = net, fn
        self.latent_dim, self.latent_dist = net.latent_dim, net.latent_dist

    def forward(self, z):
        return self.fn(z)


def test_early_stopped_rows_leave_the_batch_and_follow_the_same_path(generator):
    """A RowLoss lets Adam drop stopped rows: later steps run fewer rows, and every row ends
    where the masked search (a plain function, all rows kept in the batch) leaves it."""
    loss = combine(cs_loss(generator, 4, 2), latent_l2(1e-3))
    rows_seen = []

    def plain(x, z):  # not a RowLoss: stopped rows stay in
        return loss(x, z)

    config = SolveConfig(steps=400, early_stop_tol=1e-3, patience=20)
    masked = latent_search(generator, plain, 4, config)
    generator.register_forward_hook(lambda _, inputs, __: rows_seen.append(len(inputs[0])))
    dropped = latent_search(generator, loss, 4, config)
    assert torch.equal(dropped.steps_run, masked.steps_run)
    assert masked.steps_run.unique().numel() > 1, (
        "the test needs rows that stop at different checks"
    )
    torch.testing.assert_close(dropped.restart_z, masked.restart_z, atol=1e-5, rtol=0)
    torch.testing.assert_close(dropped.objective, masked.objective, atol=1e-6, rtol=1e-5)
    assert dropped.history.shape == masked.history.shape
    assert rows_seen[0] == 8 and min(rows_seen) < 8  # the batch shrank
    assert sum(rows_seen) < 0.8 * 8 * 401


def test_row_loss_select_keeps_the_targets_of_the_rows():
    y = torch.arange(4.0).view(4, 1, 1, 1)
    loss = combine(image_fidelity(lambda x: x, y), latent_l2(1.0))
    x, z = torch.zeros(2, 1, 1, 1), torch.ones(2, 3)
    torch.testing.assert_close(loss.select(torch.tensor([1, 3]))(x, z), torch.tensor([4.0, 12.0]))
    torch.testing.assert_close(
        loss.select(torch.tensor([3])).select(torch.tensor([0]))(x[:1], z[:1]), torch.tensor([12.0])
    )


class ConvGenerator(nn.Module):
    """z (N, 8) -> (N, 1, 8, 8) through a BatchNorm'd transposed convolution."""

    def __init__(self):
        super().__init__()
        self.latent_dim, self.latent_dist = LATENT, "normal"
        self.fc = nn.Linear(LATENT, 4 * 4 * 4)
        self.up = nn.Sequential(
            nn.ConvTranspose2d(4, 2, 4, 2, 1),
            nn.BatchNorm2d(2),
            nn.ReLU(),
            nn.Conv2d(2, 1, 3, 1, 1),
        )

    def forward(self, z):
        return torch.sigmoid(self.up(self.fc(z).view(-1, 4, 4, 4)))


def test_channels_last_gives_the_same_answer_and_restores_the_weights():
    torch.manual_seed(0)
    g = ConvGenerator().eval()
    encoder = nn.Sequential(nn.Conv2d(1, 3, 3, 1, 1), nn.Flatten(), nn.Linear(192, 5))
    before = {k: v.clone() for k, v in g.state_dict().items()}
    with torch.no_grad():
        target = encoder(g(torch.randn(3, LATENT)))
    loss = combine(
        encoder_fidelity(encoder, lambda x: x, expand_targets(target, 2)), latent_l2(0.1)
    )
    runs = [
        latent_search(g, loss, 3, SolveConfig(steps=60, channels_last=cl), networks=[encoder])
        for cl in (False, True)
    ]
    torch.testing.assert_close(runs[1].z, runs[0].z, atol=1e-4, rtol=0)
    torch.testing.assert_close(runs[1].x, runs[0].x, atol=1e-4, rtol=0)
    assert runs[1].x.is_contiguous()
    for k, v in g.state_dict().items():
        assert torch.equal(v, before[k]) and v.is_contiguous(), k
    assert encoder[0].weight.is_contiguous()


def test_bf16_autocast_solves_in_float32_state_with_a_close_objective():
    torch.manual_seed(0)
    g = ConvGenerator().eval()
    y = g(torch.randn(2, LATENT)).detach()
    loss = combine(image_fidelity(lambda x: x, expand_targets(y, 2)), latent_l2(1e-3))
    exact = latent_search(g, loss, 2, SolveConfig(steps=80))
    half = latent_search(g, loss, 2, SolveConfig(steps=80, autocast=True))
    assert half.z.dtype == half.objective.dtype == half.history.dtype == torch.float32
    assert half.x.dtype == torch.float32
    assert torch.isfinite(half.history).all()
    assert (half.history[-1] < half.history[0]).all()  # it still descends
    torch.testing.assert_close(half.objective, exact.objective, atol=0.05, rtol=0.2)
