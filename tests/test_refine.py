"""Steps after the latent search: per-image generator adaptation (``adapt_steps``) and
Intermediate Layer Optimization (``ilo_steps``)."""

import itertools

import pytest
import torch
from conftest import measure

from generative_encoder.data import get_dataset, stack_images
from generative_encoder.errors import ConfigError
from generative_encoder.io.checkpoints import load_model
from generative_encoder.methods import METHODS
from generative_encoder.physics.noise import residual
from generative_encoder.solve.adapt import adapted_names
from generative_encoder.solve.ilo import project_l1_ball, split_generator


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return load_model(tiny_model_dir)


@pytest.fixture(scope="module")
def digits():
    """Four real test digits: outside what the 20-step generator can make."""
    return stack_images(get_dataset("mnist5k", "test"), range(4))


@pytest.mark.parametrize("name", ["ge", "csgm"])
def test_zero_adaptation_steps_is_the_plain_method_bit_for_bit(name, model, digits):
    physics, y = measure("denoise", model, digits, sigma=0.1)
    plain = METHODS.build(name, model=model, steps=15).solve(y, physics)
    off = METHODS.build(name, model=model, steps=15, adapt_steps=0, adapt_lr=0.5).solve(y, physics)
    assert off.adapt_steps is None and plain.adapt_steps is None
    for field in ("z", "x", "objective", "generated"):
        assert torch.equal(getattr(off, field), getattr(plain, field))


@pytest.mark.parametrize(
    "kind, name, task, params",
    [
        ("adapt", "ge", "denoise", {"sigma": 0.1}),
        ("adapt", "csgm", "denoise", {"sigma": 0.1}),
        ("adapt", "ge", "inpaint", {"mask": "freeform"}),
        ("adapt", "csgm", "cs", {"m": 100}),
        ("adapt", "ge", "superres", {"factor": 2}),
        ("ilo", "ge", "denoise", {"sigma": 0.1}),
        ("ilo", "csgm", "denoise", {"sigma": 0.1}),
        ("ilo", "ge", "inpaint", {"mask": "freeform"}),
        ("ilo", "csgm", "cs", {"m": 100}),
    ],
)
def test_refined_problem_alone_equals_it_in_a_batch_of_4(kind, name, task, params, model, digits):
    """Per-problem adaptation (stacked weights) and ILO: a problem does not see its batch-mates,
    whether the steps are chosen by the discrepancy principle (sigma known) or on held-out
    entries."""
    physics, y = measure(task, model, digits, **params)
    options = {"steps": 10, f"{kind}_steps": 6, f"{kind}_lr": 1e-2, f"{kind}_check_every": 2}
    method = METHODS.build(name, model=model, **options)
    batch = method.solve(y, physics, seeds=range(100, 104))
    chosen = getattr(batch, f"{kind}_steps")
    assert len(chosen) == 4 and all(0 <= s <= 6 for s in chosen)
    for j in (0, 3):
        alone = method.solve(y[j : j + 1], physics, seeds=[100 + j])
        assert getattr(alone, f"{kind}_steps") == [chosen[j]]
        torch.testing.assert_close(alone.z[0], batch.z[j], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(alone.x[0], batch.x[j], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["ge", "csgm"])
def test_adaptation_lowers_the_residual_the_generator_cannot_explain(name, model, digits):
    """Real digits at a noise level the tiny generator cannot reach: the discrepancy rule never
    stops, so each problem keeps its lowest-residual check, below the plain search's."""
    physics, y = measure("denoise", model, digits, sigma=0.01)
    plain = METHODS.build(name, model=model, steps=20, consistency="none").solve(y, physics)
    adapted = METHODS.build(
        name, model=model, steps=20, consistency="none", adapt_steps=30, adapt_lr=1e-2
    ).solve(y, physics)
    assert all(s > 0 for s in adapted.adapt_steps)
    before, after = residual(y, physics, plain.x), residual(y, physics, adapted.x)
    assert bool((after < 0.9 * before).all()), (before, after)
    assert bool((after > physics.noise_model.sigma**2 * y[0].numel()).all())  # never stopped


def test_discrepancy_principle_stops_at_the_first_check_at_the_noise_level(model):
    """Measurements of the generator's own images with large noise: the search alone already
    explains them to the noise level, so no adaptation step is taken."""
    G = model.generator
    with torch.no_grad():
        fakes = G(G.sample_latent(4, torch.Generator().manual_seed(7)))
    physics, y = measure("denoise", model, fakes, sigma=0.3)
    plain = METHODS.build("csgm", model=model, steps=30).solve(y, physics)
    adapted = METHODS.build("csgm", model=model, steps=30, adapt_steps=20).solve(y, physics)
    fits = residual(y, physics, plain.x) <= 0.3**2 * y[0].numel()
    assert bool(fits.any())
    for j in fits.nonzero().flatten().tolist():
        assert adapted.adapt_steps[j] == 0
        assert torch.equal(adapted.x[j], plain.x[j])


def test_held_out_rule_keeps_the_iterate_of_lowest_held_out_error(model, digits):
    """Noise-free inpainting: every step's score is read, and the kept step's is the lowest."""
    from generative_encoder.solve.adapt import held_out_score
    from generative_encoder.solve.weight import held_out_split

    physics, y = measure("inpaint", model, digits, mask="freeform")
    method = METHODS.build(
        "csgm", model=model, steps=10, adapt_steps=8, adapt_lr=1e-2, adapt_check_every=1
    )
    result = method.solve(y, physics)
    _, _, held = held_out_split(y, physics, True, "csgm")
    score = held_out_score(y, physics.A, held)(result.generated)
    plain = METHODS.build("csgm", model=model, steps=10).solve(y, physics)
    plain_score = held_out_score(y, physics.A, held)(plain.generated)
    assert bool((score <= plain_score).all())
    moved = [j for j, s in enumerate(result.adapt_steps) if s > 0]
    assert all(score[j] < plain_score[j] for j in moved)


def test_chosen_steps_do_not_depend_on_the_clean_images(model, digits, monkeypatch, tmp_path):
    """The method gets y only: the same y gives the same steps; and in the bench, scoring against
    other clean images (same measurements, same seeds) changes the scores, not the steps."""
    from generative_encoder.apps import bench
    from generative_encoder.methods.latent import LatentSearch

    physics, y = measure("denoise", model, digits, sigma=0.1)
    options = {"steps": 10, "adapt_steps": 6, "adapt_lr": 1e-2, "adapt_check_every": 2}
    first = METHODS.build("ge", model=model, **options).solve(y, physics)
    second = METHODS.build("ge", model=model, **options).solve(y.clone(), physics)
    assert first.adapt_steps == second.adapt_steps and torch.equal(first.x, second.x)

    chosen, fixed_y = [], {}
    solve = LatentSearch.solve

    def recording(self, *args, **kwargs):
        result = solve(self, *args, **kwargs)
        chosen.append(result.adapt_steps)
        return result

    def measured(physics, x, seeds):  # the same y whatever the clean images are
        key = type(physics).__name__
        if key not in fixed_y:
            fixed_y[key] = bench_simulate(physics, x, seeds)
        return fixed_y[key]

    bench_simulate = bench.simulate_each
    monkeypatch.setattr(LatentSearch, "solve", recording)
    monkeypatch.setattr(bench, "simulate_each", measured)
    spec = bench.spec_from_dict(
        {
            "data": "mnist5k",
            "split": "test",
            "n_images": 3,
            "tasks": [
                {"name": "noisy", "task": "denoise", "params": {"sigma": 0.1}},
                {"name": "hole", "task": "inpaint", "params": {"mask": "freeform"}},
            ],
            "methods": ["ge", "csgm"],
            "method_options": {"ge": options, "csgm": options},
        }
    )
    rows = bench.run_bench(spec, model, tmp_path / "real")
    real = list(chosen)
    chosen.clear()
    monkeypatch.setattr(bench, "stack_images", lambda d, i: 1 - stack_images(d, i))
    other = bench.run_bench(spec, model, tmp_path / "inverted")
    assert len(real) == 4 and all(len(s) == 3 for s in real)
    assert chosen == real
    assert all(a.psnr != b.psnr for a, b in zip(rows, other))  # the scores did change


@pytest.mark.parametrize(
    "options, message",
    [
        ({"adapt_steps": -1}, "adapt_steps must be an integer >= 0, got -1"),
        ({"adapt_steps": 5, "adapt_lr": 0.0}, "adapt_lr must be > 0, got 0.0"),
        ({"adapt_steps": 5, "adapt_lr": -1e-3}, "adapt_lr must be > 0, got -0.001"),
        ({"adapt_layers": 0}, "adapt_layers must be None or an integer >= 1, got 0"),
        ({"adapt_steps": 5, "adapt_layers": 99}, "adapt_layers=99 but the generator has 5 "),
        ({"adapt_check_every": 0}, "adapt_check_every must be an integer >= 1, got 0"),
        ({"adapt_lr": float("nan")}, "lr must be finite"),
    ],
)
def test_invalid_adaptation_options_are_refused(options, message, model):
    with pytest.raises(ConfigError, match=message) as error:
        METHODS.build("ge", model=model, **options)
    assert "\n" not in str(error.value)


def test_adaptation_is_refused_where_the_last_step_regenerates_from_z(uniform_model_dir):
    with pytest.raises(ConfigError, match="'lvr_sa' has no generator adaptation"):
        METHODS.build("lvr_sa", model=load_model(uniform_model_dir), adapt_steps=3)


def test_adapt_layers_picks_the_last_layers_with_parameters(model):
    G = model.generator
    assert adapted_names(G, None) == [name for name, _ in G.named_parameters()]
    last = adapted_names(G, 1)
    assert last == [n for n, _ in G.named_parameters()][-len(last) :]
    assert set(adapted_names(G, 2)) > set(last)


@pytest.mark.parametrize("layers", [None, 1])
def test_the_shared_generator_is_left_as_it_was(layers, model, digits):
    """Adaptation changes per-problem copies only: G's weights, its BatchNorm running statistics
    (eval mode throughout) and its flags are the same after."""
    G = model.generator
    before = {k: v.clone() for k, v in G.state_dict().items()}
    flags = [p.requires_grad for p in G.parameters()], G.training
    physics, y = measure("denoise", model, digits, sigma=0.01)
    result = METHODS.build(
        "csgm", model=model, steps=5, adapt_steps=10, adapt_lr=1e-2, adapt_layers=layers
    ).solve(y, physics)
    assert all(s > 0 for s in result.adapt_steps)
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())
    assert ([p.requires_grad for p in G.parameters()], G.training) == flags
    with torch.no_grad():
        assert not torch.allclose(G(result.z), result.x, atol=1e-4)  # the adapted G made x


@pytest.mark.parametrize("name", ["ge", "csgm"])
def test_zero_ilo_steps_is_the_plain_method_bit_for_bit(name, model, digits):
    physics, y = measure("denoise", model, digits, sigma=0.1)
    plain = METHODS.build(name, model=model, steps=15).solve(y, physics)
    off = METHODS.build(
        name, model=model, steps=15, ilo_steps=0, ilo_lr=0.5, ilo_radius=3.0, ilo_layer=1
    ).solve(y, physics)
    assert off.ilo_steps is None and plain.ilo_steps is None
    for field in ("z", "x", "objective", "generated"):
        assert torch.equal(getattr(off, field), getattr(plain, field))


def test_split_generator_composes_to_the_generator(model):
    G = model.generator.eval()
    z = G.sample_latent(3, torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = G(z)
        for layer in (1, 2):
            before, after = split_generator(G, layer)
            h = before(z)
            assert h.dim() == 4 and h.shape[0] == 3
            torch.testing.assert_close(after(h), full, atol=1e-6, rtol=0)


def test_l1_projection_is_exact():
    g = torch.Generator().manual_seed(0)
    v = torch.randn(6, 50, generator=g, dtype=torch.float64)
    norms = v.abs().sum(1)
    radius = torch.tensor([0.0, 0.5, 3.0, 10.0, 1e3, 1e3], dtype=torch.float64)
    radius[4] = norms[4]  # on the boundary: unchanged
    w = project_l1_ball(v, radius)
    assert bool((w.abs().sum(1) <= radius * (1 + 1e-12) + 1e-12).all())
    assert torch.equal(w[4], v[4]) and torch.equal(w[5], v[5])  # inside: unchanged
    assert torch.equal(w[0], torch.zeros_like(v[0]))
    for j in (1, 2, 3):  # outside: on the sphere, the soft-threshold of v
        assert abs(w[j].abs().sum() - radius[j]) < 1e-10
        assert bool((w[j] * v[j] >= 0).all())
    # scalar radius, float32
    w32 = project_l1_ball(v.float(), 2.0)
    torch.testing.assert_close(w32, project_l1_ball(v, 2.0).float(), atol=1e-6, rtol=1e-5)


def test_l1_projection_matches_brute_force_on_small_vectors():
    """In 3 dimensions the projection is the closest point among the candidates on each face
    of the l1 sphere (the closest point of each face's plane within the face, its edges and
    vertices) and v itself when inside."""
    g = torch.Generator().manual_seed(1)
    v = torch.randn(40, 3, generator=g, dtype=torch.float64) * 2
    r = 1.5
    mesh = torch.linspace(0, 1, 301, dtype=torch.float64)
    a, b = torch.meshgrid(mesh, mesh, indexing="ij")
    keep = (a + b) <= 1
    a, b = a[keep], b[keep]
    face = torch.stack([a, b, 1 - a - b], 1) * r  # (P, 3) points of one octant's face
    signs = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=3)), dtype=torch.float64)
    sphere = (face[None] * signs[:, None]).reshape(-1, 3)  # the whole l1 sphere, sampled
    w = project_l1_ball(v, r)
    for vi, wi in zip(v, w):
        if vi.abs().sum() <= r:
            assert torch.equal(wi, vi)
            continue
        d_brute = (sphere - vi).norm(dim=1).min()
        d = (wi - vi).norm()
        assert d <= d_brute + 1e-12  # nothing sampled on the ball is closer
        assert d >= d_brute - r / 300 * 2  # and the sample's best is as close, up to the grid


@pytest.mark.parametrize(
    "name, layer, ratio", [("csgm", 1, 0.9), ("csgm", 2, 0.9), ("ge", 2, 0.99)]
)
def test_ilo_lowers_the_residual_the_generator_cannot_explain(name, layer, ratio, model, digits):
    """Real digits at a noise level the tiny generator cannot reach: the discrepancy rule never
    stops, so each problem keeps its lowest-residual check, below the plain search's (GE fits
    the tiny encoder's code, which follows the residual only loosely)."""
    physics, y = measure("denoise", model, digits, sigma=0.01)
    common = {"steps": 20, "consistency": "none"}
    plain = METHODS.build(name, model=model, **common).solve(y, physics)
    ilo = METHODS.build(
        name, model=model, ilo_steps=30, ilo_layer=layer, ilo_radius=0.5, ilo_lr=3e-2, **common
    ).solve(y, physics)
    assert all(s > 0 for s in ilo.ilo_steps)
    assert torch.equal(ilo.z, plain.z)
    before, after = residual(y, physics, plain.x), residual(y, physics, ilo.x)
    assert bool((after < ratio * before).all()), (before, after)
    assert bool((after > physics.noise_model.sigma**2 * y[0].numel()).all())  # never stopped


def test_a_negative_ilo_layer_counts_from_the_end(model, digits):
    """The tiny generator has two transposed convolutions: layer -1 is layer 2, -2 is layer 1."""
    physics, y = measure("denoise", model, digits, sigma=0.01)
    common = {"steps": 10, "consistency": "none", "ilo_steps": 10, "ilo_radius": 0.5}
    results = {
        layer: METHODS.build("csgm", model=model, ilo_layer=layer, **common).solve(y, physics).x
        for layer in (1, 2, -1, -2)
    }
    assert torch.equal(results[-1], results[2]) and torch.equal(results[-2], results[1])
    assert not torch.equal(results[1], results[2])


def test_ilo_stays_in_the_l1_ball(model, digits):
    """The chosen image is G_after of a point within radius * n (l1) of G_before(z*)."""
    physics, y = measure("denoise", model, digits, sigma=0.01)
    method = METHODS.build(
        "csgm", model=model, steps=10, consistency="none", ilo_steps=10, ilo_radius=0.01
    )
    result = method.solve(y, physics)
    free = METHODS.build(
        "csgm", model=model, steps=10, consistency="none", ilo_steps=10, ilo_radius=100.0
    ).solve(y, physics)
    G = model.generator.eval()
    with torch.no_grad():
        far = residual(y, physics, free.x)
        near = residual(y, physics, result.x)
        plain = residual(y, physics, G(result.z))
    assert bool((far < near).all()) and bool((near <= plain).all())


@pytest.mark.parametrize("name", ["ge", "csgm"])
def test_radius_zero_returns_the_plain_result(name, model, digits):
    physics, y = measure("inpaint", model, digits, mask="freeform")
    plain = METHODS.build(name, model=model, steps=10).solve(y, physics)
    zero = METHODS.build(name, model=model, steps=10, ilo_steps=5, ilo_radius=0.0).solve(y, physics)
    assert zero.ilo_steps == [0, 0, 0, 0]
    for field in ("z", "x", "generated"):
        assert torch.equal(getattr(zero, field), getattr(plain, field))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"ilo_steps": -1}, "ilo_steps"),
        ({"ilo_steps": 5, "ilo_layer": 0}, "ilo_layer"),
        ({"ilo_steps": 5, "ilo_layer": 3}, "ilo_layer must be in 1..2"),
        ({"ilo_steps": 5, "ilo_layer": -3}, "ilo_layer must be in 1..2 or -2..-1"),
        ({"ilo_steps": 5, "ilo_radius": -0.1}, "ilo_radius"),
        ({"ilo_steps": 5, "ilo_lr": 0.0}, "ilo_lr"),
        ({"ilo_steps": 5, "ilo_radius": float("nan")}, "radius"),
        ({"ilo_steps": 5, "ilo_check_every": 0}, "ilo_check_every"),
        ({"ilo_steps": 5, "adapt_steps": 5}, "cannot both"),
        ({"ilo_stepz": 5}, "no option"),
    ],
)
def test_bad_options_are_refused_in_one_line(options, message, model):
    with pytest.raises(ConfigError, match=message) as info:
        METHODS.build("csgm", model=model, **options)
    assert "\n" not in str(info.value)


def test_ilo_is_refused_where_the_last_step_regenerates_from_z(uniform_model_dir):
    with pytest.raises(ConfigError, match="'lvr_sa' has no intermediate layer") as info:
        METHODS.build("lvr_sa", model=load_model(uniform_model_dir), ilo_steps=5)
    assert "\n" not in str(info.value)


def test_generator_that_cannot_be_split_is_refused():
    with pytest.raises(ConfigError, match="DCGAN generator") as info:
        split_generator(torch.nn.Linear(2, 2), 1)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "kind, name, task, params",
    [
        ("ilo", "csgm", "superres", {"factor": 2}),
        ("ilo", "ge", "inpaint", {"mask": "block"}),
        ("adapt", "csgm", "denoise", {"sigma": 0.1}),
    ],
)
def test_refine_of_a_plain_solve_equals_the_solve_with_the_steps(
    kind, name, task, params, model, digits
):
    """A sweep over the steps after the search searches once: refine(plain solve) is solve."""
    physics, y = measure(task, model, digits, **params)
    plain = METHODS.build(name, model=model, steps=10).solve(y, physics, seeds=range(4))
    options = {"steps": 10, f"{kind}_steps": 6, f"{kind}_lr": 1e-2, f"{kind}_check_every": 2}
    method = METHODS.build(name, model=model, **options)
    direct = method.solve(y, physics, seeds=range(4))
    refined = method.refine(plain, y, physics)
    assert getattr(refined, f"{kind}_steps") == getattr(direct, f"{kind}_steps")
    assert any(getattr(direct, f"{kind}_steps")), "the test needs steps that move the answer"
    for field in ("x", "generated", "objective", "z"):
        assert torch.equal(getattr(refined, field), getattr(direct, field)), field
    assert not torch.equal(refined.x, plain.x)


def test_refine_refuses_what_it_cannot_take_apart(model, digits):
    physics, y = measure("denoise", model, digits, sigma=0.1)
    method = METHODS.build("csgm", model=model, steps=5, ilo_steps=2)
    with pytest.raises(ConfigError, match="solve without adaptation or ILO"):
        method.refine(method.solve(y, physics), y, physics)
    members = METHODS.build("csgm", model=model, steps=5, ensemble=2).solve(y, physics)
    with pytest.raises(ConfigError, match="finished solve with ensemble=1"):
        method.refine(members, y, physics)
    auto = METHODS.build("csgm", model=model, steps=5, ilo_steps=2, latent_weight="auto")
    with pytest.raises(ConfigError, match="fixed latent_weight and ensemble=1"):
        auto.refine(METHODS.build("csgm", model=model, steps=5).solve(y, physics), y, physics)
