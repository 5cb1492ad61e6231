"""FID, convergence curves, latent maps and attribute preservation
(generative_encoder.apps.analyses and
the modules it runs), on tiny models and a few steps."""

import csv
import json

import pytest
import torch
from conftest import write_test_digits
from PIL import Image

from generative_encoder.apps.bench import run_bench, spec_from_dict
from generative_encoder.data import get_dataset, stack_images
from generative_encoder.errors import ConfigError, DataError
from generative_encoder.eval.attributes import (
    LabelledImages,
    RotatedImages,
    attribute_labels,
    markdown_2x2,
    preservation_table,
    read_attribute_file,
)
from generative_encoder.eval.curves import curve_from_result, plot_convergence
from generative_encoder.eval.fid import (
    FeatureNet,
    classifier_features,
    domain_classifier,
    frechet_distance,
    inception_features,
)
from generative_encoder.eval.latent_maps import nearest_neighbours, neighbour_agreement, pca
from generative_encoder.io.checkpoints import load_model
from generative_encoder.methods import METHODS
from generative_encoder.physics import make_physics


def _read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def digits():
    test = get_dataset("mnist5k", "test")
    return stack_images(test, range(120))


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    folder = tmp_path_factory.mktemp("classifier")
    return domain_classifier(get_dataset("mnist5k", "train"), folder, steps=40), folder


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_noise(digits, classifier):
    features = classifier_features(classifier[0])
    assert features.num_features == 128
    same = frechet_distance(digits, digits, features)
    g = torch.Generator().manual_seed(0)
    noisy = [
        frechet_distance(
            digits, (digits + s * torch.randn(digits.shape, generator=g)).clamp(0, 1), features
        )
        for s in (0.1, 0.3)
    ]
    assert abs(same) < 1e-6 * noisy[0]
    assert noisy[0] > 0 and noisy[1] > 2 * noisy[0]
    # two halves of the same kind of images are closer than clean vs noisy
    assert frechet_distance(digits[:60], digits[60:], features) < noisy[1]


def test_fid_of_simple_features_matches_the_gaussian_formula():
    # features = the pixels of 1 x 1 x 2 images: FID of N(0, I) vs N(m, I) samples -> |m|^2
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 2, 1, 1, generator=g)
    b = torch.randn(4000, 2, 1, 1, generator=g) + torch.tensor([1.0, 2.0]).view(1, 2, 1, 1)
    fid = frechet_distance(a, b, FeatureNet(torch.nn.Flatten(), 2))
    assert fid == pytest.approx(5.0, abs=0.15)


def test_domain_classifier_is_cached_and_never_overwritten(classifier):
    net, folder = classifier
    again = domain_classifier(get_dataset("mnist5k", "train"), folder, steps=40)
    for p, q in zip(net.parameters(), again.parameters()):
        assert torch.equal(p, q)
    with pytest.raises(ConfigError, match="holds a classifier trained with"):
        domain_classifier(get_dataset("mnist5k", "train"), folder, steps=41)


def test_inception_needs_a_safetensors_file_on_disk(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        inception_features(tmp_path / "inception_v3.safetensors")
    with pytest.raises(ConfigError, match="pickled .pth files are refused"):
        inception_features(tmp_path / "inception_v3_google.pth")
    with pytest.raises(ConfigError, match="needs inception_weights"):
        spec_from_dict(
            {
                "tasks": [{"task": "denoise"}],
                "analyses": ["fid"],
                "analysis_options": {"fid": {"feature": "inception"}},
            }
        )


def test_convergence_curve_of_a_problem_in_the_generators_range_falls(tiny_model_dir):
    model = load_model(tiny_model_dir)
    g = model.generator
    z0 = g.sample_latent(4, torch.Generator().manual_seed(1))
    with torch.no_grad():
        x0 = g(z0)
    physics = make_physics("inpaint", model.image_shape, mask="random", missing=0.5)
    y = physics(x0)  # y = A(G(z0))
    csgm = METHODS.build("csgm", model=model, steps=60, restarts=1, snapshot_every=10)
    curve = curve_from_result(csgm.solve(y, physics), x0)  # scored after solving
    assert curve.steps == [0, 10, 20, 30, 40, 50, 60]
    assert curve.mse.shape == (7, 4)
    mean = curve.mean()
    assert mean[-1] < 0.5 * mean[0]
    assert mean[-1] <= mean[len(mean) // 2]


def test_plot_convergence_writes_a_png(tiny_model_dir, tmp_path):
    from generative_encoder.eval.curves import Curve

    c = Curve(steps=[0, 5, 10], mse=torch.tensor([[0.1, 0.2], [0.05, 0.1], [0.02, 0.03]]))
    assert c.log10_mean().tolist() == pytest.approx([-0.8239, -1.1249, -1.6021], abs=1e-4)
    plot_convergence({"a": {"ge": c, "csgm": c}, "b": {"ge": c}}, tmp_path / "c.png")
    assert Image.open(tmp_path / "c.png").width > 300


def test_pca_known_values():
    # points on the line y = x: one component (1, 1)/sqrt(2), all the variance
    p = pca(torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]), k=2)
    assert p.components[0].tolist() == pytest.approx([2**-0.5, 2**-0.5])
    assert p.projection[:, 0].tolist() == pytest.approx(
        [-(4.5**0.5), -(0.5**0.5), 0.5**0.5, 4.5**0.5]
    )
    assert p.explained.tolist() == pytest.approx([1.0, 0.0], abs=1e-12)
    # an axis-aligned cross: variance 8 along x (points +-2), 2 along y (points +-1)
    pts = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    p = pca(pts + torch.tensor([5.0, -3.0]))
    assert p.mean.tolist() == pytest.approx([5.0, -3.0])
    assert torch.allclose(p.components, torch.eye(2, dtype=torch.float64))  # signs fixed
    assert p.explained.tolist() == pytest.approx([0.8, 0.2])
    assert torch.allclose(p.projection, pts.double())
    with pytest.raises(ConfigError):
        pca(torch.zeros(1, 3))


def test_nearest_neighbours_and_agreement():
    pts = torch.tensor([[0.0], [0.1], [5.0], [5.2], [9.0]])
    nn_ = nearest_neighbours(pts, 1)
    assert nn_[:, 0].tolist() == [1, 0, 3, 2, 3]
    assert neighbour_agreement(nn_, torch.tensor([0, 0, 1, 1, 2])) == pytest.approx(0.8)


def test_preservation_table_adds_up():
    a = torch.tensor([1, 1, 0, 0, 1, 0, 1], dtype=torch.bool)
    b = torch.tensor([1, 0, 1, 0, 1, 0, 0], dtype=torch.bool)
    t = preservation_table(a, b)
    assert t.tolist() == [[2, 2], [1, 2]] and t.sum() == len(a)
    md = markdown_2x2(t, "ge", "csgm")
    assert "| **ge kept** | 2 | 2 | 4 |" in md and "| total | 3 | 4 | 7 |" in md


ATTR_FILE = """4
Eyeglasses Smiling Young
digit0.png -1  1 1
digit1.png  1 -1 1
digit2.png  1  1 -1
digit3.png -1 -1 -1
"""


def test_attribute_file_parser(tmp_path):
    path = tmp_path / "list_attr.txt"
    path.write_text(ATTR_FILE)
    table = read_attribute_file(path)
    assert table.names == ["Eyeglasses", "Smiling", "Young"]
    assert table.files == ["digit0.png", "digit1.png", "digit2.png", "digit3.png"]
    assert table.values.tolist() == [[-1, 1, 1], [1, -1, 1], [1, 1, -1], [-1, -1, -1]]
    assert table.column("Eyeglasses") == {
        "digit0.png": 0,
        "digit1.png": 1,
        "digit2.png": 1,
        "digit3.png": 0,
    }
    with pytest.raises(ConfigError, match="'Hat' is not in the attribute file"):
        table.column("Hat")
    folder = write_test_digits(tmp_path / "imgs", 4)
    data = get_dataset("folder", "all", root=folder, size=28, channels=1)
    labels = attribute_labels(data, table, "Smiling")
    assert labels.tolist() == [1, 0, 1, 0]
    labelled = LabelledImages(data, labels, "Smiling")
    assert labelled[2][1] == 1 and labelled.name == "folder:Smiling"
    for bad, message in [
        (ATTR_FILE.replace("4\n", "5\n", 1), "says 5 images"),
        (ATTR_FILE.replace(" 1 1\n", " 1 2\n", 1), "1 or -1"),
        (
            ATTR_FILE.replace("digit3.png -1 -1 -1", "digit3.png -1 -1"),
            "expected a file name and 3 values",
        ),
        ("Eyeglasses\n", "first line"),
    ]:
        path.write_text(bad)
        with pytest.raises(DataError, match=message):
            read_attribute_file(path)
    with pytest.raises(ConfigError, match="does not exist"):
        read_attribute_file(tmp_path / "missing.txt")
    write_test_digits(tmp_path / "imgs", 5)  # digit4.png is in no attribute line
    path.write_text(ATTR_FILE)
    with pytest.raises(DataError, match="not in the attribute file, e.g. 'digit4.png'"):
        attribute_labels(
            get_dataset("folder", "all", root=folder, size=28, channels=1),
            read_attribute_file(path),
            "Smiling",
        )


INSIGHT_SPEC = {
    "data": "mnist5k",
    "split": "test",
    "n_images": 6,
    "tasks": [
        {"name": "noisy", "task": "denoise", "params": {"sigma": 0.2}},
        {"name": "hole", "task": "inpaint", "params": {"mask": "block"}},
    ],
    "methods": ["ge", "csgm", "autoencoder"],
    "method_options": {"ge": {"steps": 6}, "csgm": {"steps": 6}},
    "analyses": ["fid", "convergence", "latent_map", "attributes"],
    "analysis_options": {
        "classifier": {"steps": 20},
        "fid": {"n_reference": 50},
        "convergence": {"every": 2},
        "latent_map": {"neighbours": 2, "queries": 2, "pair": [0, 3]},
    },
}


def test_bench_analyses_write_plots_and_tables(tiny_model_dir, tmp_path):
    model = load_model(tiny_model_dir)
    plain = {k: v for k, v in INSIGHT_SPEC.items() if not k.startswith("analys")}
    rows_plain = run_bench(spec_from_dict(plain), model, tmp_path / "plain")
    labels = []
    rows = run_bench(spec_from_dict(INSIGHT_SPEC), model, tmp_path / "a", labels.append)
    # the analyses change no (task, method) row
    assert [(r.task, r.method, r.mse, r.ssim) for r in rows] == [
        (r.task, r.method, r.mse, r.ssim) for r in rows_plain
    ]
    assert labels[-4:] == [
        "analysis: fid",
        "analysis: convergence",
        "analysis: latent_map",
        "analysis: attributes",
    ]
    out = tmp_path / "a"
    for name in (
        "fid.png",
        "convergence.png",
        "latent_pca.png",
        "latent_neighbours.png",
        "latent_interpolation.png",
        "attributes.png",
    ):
        assert Image.open(out / name).width > 100, name
    fid = _read(out / "fid.csv")
    assert [r["method"] for r in fid[:2]] == ["clean images", "generator samples"]
    assert [(r["task"], r["method"]) for r in fid[2:]] == [(r.task, r.method) for r in rows]
    assert all(float(r["fid"]) >= 0 for r in fid)
    md = (out / "fid.md").read_text()
    assert "| task | method | n | MSE | SSIM | domain FID |" in md and "| noisy | ge | 6 |" in md
    conv = _read(out / "convergence.csv")
    assert {(r["task"], r["method"]) for r in conv} == {
        (t, m) for t in ("noisy", "hole") for m in ("ge", "csgm")
    }
    assert [int(r["step"]) for r in conv if r["task"] == "noisy" and r["method"] == "ge"] == [
        0,
        2,
        4,
        6,
    ]
    attributes = _read(out / "attributes.csv")
    assert len(attributes) == len(rows)
    assert all(int(r["kept"]) + int(r["lost"]) == 6 for r in attributes)
    text = (out / "attributes.md").read_text()
    totals = [line for line in text.splitlines() if line.startswith("| total |")]
    assert text.count("| **ge kept** |") == 2 and len(totals) == 2  # one 2 x 2 table per task
    assert all(line.endswith("| 6 |") for line in totals)
    latent = (out / "latent_map.md").read_text()
    assert "representation error" in latent and "| real | 6 |" in latent
    spec = json.loads((out / "spec.json").read_text())
    assert spec["analyses"] == INSIGHT_SPEC["analyses"]

    # again with other analysis options in the finished folder: no method runs again, the
    # cached curves and latents are reused
    again = []
    changed = INSIGHT_SPEC | {"analyses": ["convergence", "latent_map"]}
    rows2 = run_bench(spec_from_dict(changed), model, out, again.append)
    assert again == ["analysis: convergence", "analysis: latent_map"]
    assert [r.mse for r in rows2] == [r.mse for r in rows]


def test_bench_convergence_of_pairs_finished_before(tiny_model_dir, tmp_path):
    model = load_model(tiny_model_dir)
    plain = {k: v for k, v in INSIGHT_SPEC.items() if not k.startswith("analys")}
    run_bench(spec_from_dict(plain | {"tasks": plain["tasks"][:1]}), model, tmp_path)
    spec = plain | {
        "tasks": plain["tasks"][:1],
        "analyses": ["convergence"],
        "analysis_options": {"convergence": {"every": 3, "methods": ["ge"]}},
    }
    progress = []
    run_bench(spec_from_dict(spec), model, tmp_path, progress.append)
    assert progress == ["analysis: convergence"]  # the curve is solved again, the pair is not
    conv = _read(tmp_path / "convergence.csv")
    assert [(r["method"], int(r["step"])) for r in conv] == [("ge", 0), ("ge", 3), ("ge", 6)]


def test_bench_convergence_of_other_tasks_is_skipped_not_an_error(tiny_model_dir, tmp_path):
    """`genc bench --tasks hole` on a spec whose convergence curves are of "noisy" only."""
    plain = {k: v for k, v in INSIGHT_SPEC.items() if not k.startswith("analys")}
    spec = plain | {
        "tasks": plain["tasks"][1:],
        "methods": ["ge"],
        "analyses": ["convergence"],
        "analysis_options": {"convergence": {"every": 3, "tasks": ["noisy"]}},
    }
    rows = run_bench(spec_from_dict(spec), load_model(tiny_model_dir), tmp_path)
    assert [(r.task, r.method) for r in rows] == [("hole", "ge")]
    assert not (tmp_path / "convergence.csv").exists()
    with pytest.raises(ConfigError, match="found no latent-search method"):
        run_bench(
            spec_from_dict(spec | {"tasks": plain["tasks"], "methods": ["autoencoder"]}),
            load_model(tiny_model_dir),
            tmp_path / "b",
        )  # the task is here, no GE/CSGM


def test_attribute_path_on_a_labelled_folder(tiny_model_dir, tmp_path):
    """The CelebA code path: images in a folder, a binary attribute from a list_attr file."""
    folder = write_test_digits(tmp_path / "faces", 12, width=2)
    test = get_dataset("mnist5k", "test")
    lines = [f"digit{i:02d}.png " + ("1" if test[i][1] % 2 else "-1") + " -1" for i in range(12)]
    attr = tmp_path / "list_attr_celeba.txt"
    attr.write_text("12\nEyeglasses Smiling\n" + "\n".join(lines) + "\n")
    model = load_model(tiny_model_dir)
    spec = {
        "data": "folder",
        "data_options": {"root": str(folder), "size": 28, "channels": 1, "test_size": 6},
        "split": "test",
        "n_images": 6,
        "tasks": [{"name": "noisy", "task": "denoise", "params": {"sigma": 0.2}}],
        "methods": ["ge", "csgm"],
        "method_options": {"ge": {"steps": 3}, "csgm": {"steps": 3}},
        "analyses": ["fid", "attributes", "latent_map"],
        "analysis_options": {
            "classifier": {
                "steps": 10,
                "attribute_file": str(attr),
                "attribute": "Eyeglasses",
                "dir": str(tmp_path / "cls"),
            },
            "fid": {"n_reference": 6, "n_samples": 6},
            "attributes": {"positives_only": True},
            "latent_map": {"neighbours": 2, "queries": 1},
        },
    }
    run_bench(spec_from_dict(spec), model, tmp_path / "out")
    positives = sum(test[i][1] % 2 for i in range(6, 12))
    rows = _read(tmp_path / "out" / "attributes.csv")
    assert [int(r["kept"]) + int(r["lost"]) for r in rows] == [positives, positives]
    text = (tmp_path / "out" / "attributes.md").read_text()
    assert "| total | " in text and text.count("kept Eyeglasses") >= 2
    assert not (tmp_path / "cls").exists()  # trained inside the bench folder, never outside
    own = tmp_path / "out" / "outputs" / "_analysis" / "classifier" / "classifier.json"
    meta = json.loads(own.read_text())["meta"]
    assert meta["dataset"] == "folder:Eyeglasses" and meta["steps"] == 10
    # no labels and no attribute file: a clear error
    bad = spec | {"analyses": ["attributes"], "analysis_options": {}}
    with pytest.raises(ConfigError, match="has no labels"):
        run_bench(spec_from_dict(bad), model, tmp_path / "bad")


def test_rotated_images_label_each_quarter_turn():
    test = get_dataset("mnist5k", "test")
    rotated = RotatedImages(torch.utils.data.Subset(test, range(3)))
    assert len(rotated) == 12 and [rotated[i][1] for i in range(4)] == [0, 1, 2, 3]
    x = test[1][0]
    assert torch.equal(rotated[4][0], x) and torch.equal(rotated[6][0], x.flip(-1).flip(-2))
    assert torch.equal(rotated[5][0][0, :, 0], x[0, 0, :].flip(0))  # 90 degrees counter-clockwise


def test_domain_fid_on_an_unlabelled_folder_through_rotations(tiny_model_dir, tmp_path):
    """Faces have no labels: the rotation classifier still gives the domain FID features."""
    folder = write_test_digits(tmp_path / "faces", 12, width=2)
    spec = {
        "data": "folder",
        "data_options": {"root": str(folder), "size": 28, "channels": 1, "test_size": 6},
        "split": "test",
        "n_images": 6,
        "tasks": [{"name": "noisy", "task": "denoise", "params": {"sigma": 0.2}}],
        "methods": ["bm3d"],
        "analyses": ["fid"],
        "analysis_options": {
            "classifier": {"steps": 10, "rotation": True, "dir": str(tmp_path / "cls")},
            "fid": {"n_reference": 6, "n_samples": 6},
        },
    }
    run_bench(spec_from_dict(spec), load_model(tiny_model_dir), tmp_path / "out")
    rows = {r["method"]: float(r["fid"]) for r in _read(tmp_path / "out" / "fid.csv")}
    assert rows and all(v >= 0 for v in rows.values())
    own = tmp_path / "out" / "outputs" / "_analysis" / "classifier"
    meta = json.loads((own / "classifier.json").read_text())
    assert meta["meta"]["dataset"] == "folder:rotation" and meta["kwargs"]["n_classes"] == 4
    # ``dir`` holding a classifier is read, not written: a second bench folder reuses it
    shared = spec | {
        "analysis_options": spec["analysis_options"]
        | {"classifier": {"steps": 10, "rotation": True, "dir": str(own)}}
    }
    before = {p.name: p.stat().st_mtime_ns for p in own.iterdir()}
    run_bench(spec_from_dict(shared), load_model(tiny_model_dir), tmp_path / "again")
    assert {p.name: p.stat().st_mtime_ns for p in own.iterdir()} == before
    assert not (tmp_path / "again" / "outputs" / "_analysis" / "classifier").exists()
    again = {r["method"]: float(r["fid"]) for r in _read(tmp_path / "again" / "fid.csv")}
    assert again == rows
    bad = spec | {"analyses": ["attributes"]}
    with pytest.raises(ConfigError, match="rotation classifier predicts no class"):
        run_bench(spec_from_dict(bad), load_model(tiny_model_dir), tmp_path / "bad")


def test_bad_analysis_specs():
    base = {"tasks": [{"task": "denoise"}]}
    with pytest.raises(ConfigError, match="unknown analyses \\['magic'\\]"):
        spec_from_dict(base | {"analyses": ["magic"]})
    with pytest.raises(ConfigError, match="analysis 'fid' has no option \\['colour'\\]"):
        spec_from_dict(base | {"analyses": ["fid"], "analysis_options": {"fid": {"colour": 1}}})
    with pytest.raises(ConfigError, match="unknown entry 'plots'"):
        spec_from_dict(base | {"analysis_options": {"plots": {}}})
    with pytest.raises(ConfigError, match="must be a list"):
        spec_from_dict(base | {"analyses": "fid"})
    with pytest.raises(ConfigError, match="go together"):
        spec_from_dict(base | {"analysis_options": {"classifier": {"attribute": "Eyeglasses"}}})


@pytest.mark.slow
def test_inception_features_from_a_safetensors_file(tmp_path):
    """The Inception path with random weights (the real ones are never downloaded)."""
    from safetensors.torch import save_file
    from torchvision.models import inception_v3

    net = inception_v3(weights=None, aux_logits=True, init_weights=False)
    save_file(net.state_dict(), str(tmp_path / "inception_v3.safetensors"))
    features = inception_features(tmp_path / "inception_v3.safetensors")
    assert features.num_features == 2048
    assert features(torch.rand(2, 1, 28, 28)).shape == (2, 2048)  # gray digits made RGB, 299 px
    save_file({"fc.weight": torch.zeros(3, 3)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ConfigError, match="not torchvision's inception_v3 state dict"):
        inception_features(tmp_path / "other.safetensors")
