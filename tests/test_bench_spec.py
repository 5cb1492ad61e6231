"""Bench specs are shared files: every name that becomes a file name is checked, every field's
type and range is checked before anything runs, and ``genc bench`` writes nothing outside its
``--out`` folder. A refused spec gets exit code 2 and one line ``genc: error: ...`` that names the
field and the bad value; it makes no file at all."""

import json
import math
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from generative_encoder.apps.analyses import OPTIONS as ANALYSIS_OPTIONS
from generative_encoder.apps.bench import (
    BenchSpec,
    TaskSpec,
    load_spec,
    run_bench,
    spec_from_dict,
)
from generative_encoder.cli import main
from generative_encoder.data import get_dataset
from generative_encoder.errors import ConfigError
from generative_encoder.io.checkpoints import load_model
from generative_encoder.io.names import MAX_NAME_LENGTH, check_file_name, path_inside

BASE = {"n_images": 1, "tasks": [{"name": "noisy", "task": "denoise"}], "methods": ["identity"]}
TEST_SPLIT = len(get_dataset("mnist5k", "test"))
HOSTILE_NAMES = [
    "..",
    ".",
    "",
    " ",
    "/abs",
    "/etc/passwd",
    "a/../../b",
    "../../../../somewhere/photo",
    "..\\..\\photo",
    "C:photo",
    "a\x00b",
    "a\nb",
    "~",
    "~/photo",
    "x" * (MAX_NAME_LENGTH + 1),
    "x" * 5000,
    "ümlaut",
    "日本",
    "\u202ename",
    ".hidden",
    "trailing.",
    "CON",
    "nul.txt",
    "lpt1",
    "a:b",
    "a*b",
    "a?b",
    'a"b',
    "a|b",
    "a<b>",
]
SAFE_NAME = r"[A-Za-z0-9_-]([A-Za-z0-9._-]{0,98}[A-Za-z0-9_-])?"


def _task(**change) -> dict:
    """BASE with its one task changed."""
    return BASE | {"tasks": [BASE["tasks"][0] | change]}


# --- the file system ---------------------------------------------------------------------------


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` (folders as None, files by their bytes), relative to it."""
    return {
        str(p.relative_to(root)): None if p.is_dir() else p.read_bytes() for p in root.rglob("*")
    }


class Playground:
    """A temporary folder holding a spec, files that a spec must not touch and an output folder
    ``a/b/out`` two levels down (its parents exist, so only ``out`` itself may appear)."""

    def __init__(self, root: Path):
        self.root = root
        self.out = root / "a" / "b" / "out"
        self.out.parent.mkdir(parents=True)
        (root / "somewhere").mkdir()
        (root / "somewhere" / "photo.png").write_bytes(b"precious photo")
        (root / "a" / "victim.png").write_bytes(b"precious")
        (root / "a" / "b" / "grid_photo.png").write_bytes(b"precious grid")
        self.spec = root / "spec.json"

    def bench(self, capsys, spec, model: Path, raw: str | None = None) -> tuple[int, str]:
        """``genc bench`` of ``spec`` (any JSON value; or the text ``raw``) into ``out``; returns
        (exit code, stderr), and checks that nothing outside ``out`` appeared or changed."""
        self.spec.write_text(raw if raw is not None else json.dumps(spec))
        before = _snapshot(self.root)
        code = main(["bench", str(self.spec), "--model", str(model), "--out", str(self.out)])
        _, err = capsys.readouterr()
        after = _snapshot(self.root)
        inside = str(self.out.relative_to(self.root))
        assert {p: after[p] for p in before} == before  # nothing changed or removed
        new = sorted(set(after) - set(before))
        assert all(p == inside or p.startswith(inside + os.sep) for p in new), new
        return code, err


@pytest.fixture
def play(tmp_path) -> Playground:
    return Playground(tmp_path)


def _one_error_line(code: int, err: str) -> str:
    """The message of a refusal: exit code 2 and one line ``genc: error: ...``."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.rstrip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("genc: error: "), err
    return lines[0].removeprefix("genc: error: ")


# --- names -------------------------------------------------------------------------------------


NAME_CASES = [
    ("../../../../somewhere/photo", "'../../../../somewhere/photo'"),
    ("../../grid_photo", "'../../grid_photo'"),  # grid_../../grid_photo.png is a/b/grid_photo.png
    ("/abs/photo", "'/abs/photo'"),
    ("a/../../b", "'a/../../b'"),
    ("..\\..\\photo", "'..\\\\..\\\\photo'"),
    ("a\x00b", "'a\\x00b'"),
    ("a\nb", "'a\\nb'"),
    ("~", "'~'"),
    ("ümlaut", "'ümlaut'"),
    ("a:b", "'a:b'"),
]


@pytest.mark.parametrize("name, shown", NAME_CASES, ids=[repr(c[0]) for c in NAME_CASES])
def test_a_task_name_that_is_not_a_plain_file_name_is_refused(
    name, shown, play, capsys, tiny_model_dir
):
    message = _one_error_line(*play.bench(capsys, _task(name=name), tiny_model_dir))
    assert message == (
        f"task name must use only letters, digits, '-', '_' and '.' (it names files), got {shown}"
    )
    assert not play.out.exists()
    assert (play.root / "a" / "b" / "grid_photo.png").read_bytes() == b"precious grid"


@pytest.mark.parametrize(
    "name, message",
    [
        ("", "task name must use only letters, digits, '-', '_' and '.' (it names files), got ''"),
        (".hidden", "task name must not start or end with '.', got '.hidden'"),
        ("..", "task name must not start or end with '.', got '..'"),
        ("trailing.", "task name must not start or end with '.', got 'trailing.'"),
        ("CON", "task name must not be a Windows device name, got 'CON'"),
        ("nul.txt", "task name must not be a Windows device name, got 'nul.txt'"),
        (3, "task name must be a string, got 3"),
        (None, "task name must be a string, got None"),
        (["a"], "task name must be a string, got ['a']"),
        (
            "x" * 5000,
            f"task name must be at most {MAX_NAME_LENGTH} characters, got '{'x' * 39}... "
            "(5000 characters)",
        ),
    ],
)
def test_odd_task_names_are_refused_with_the_rule_they_break(
    name, message, play, capsys, tiny_model_dir
):
    assert _one_error_line(*play.bench(capsys, _task(name=name), tiny_model_dir)) == message
    assert not play.out.exists()


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            BASE | {"methods": ["../identity"]},
            "method name must use only letters, digits, '-', '_' and '.' (it names files), "
            "got '../identity'",
        ),
        (_task(methods=["/abs"]), "got '/abs'"),
        (BASE | {"method_options": {"../../x": {}}}, "method name must use only"),
        (BASE | {"methods": [7]}, "method name must be a string, got 7"),
        (_task(task="../denoise"), "unknown task '../denoise'; known: colorize, cs"),
    ],
)
def test_method_names_and_task_kinds_are_checked_too(spec, message, play, capsys, tiny_model_dir):
    assert message in _one_error_line(*play.bench(capsys, spec, tiny_model_dir))
    assert not play.out.exists()


def test_the_name_rule_in_one_place():
    assert check_file_name("image", "denoise-0.4_x") == "denoise-0.4_x"
    assert check_file_name("image", "a" * MAX_NAME_LENGTH) == "a" * MAX_NAME_LENGTH
    with pytest.raises(ConfigError, match="^model name must not start or end with '.', got '..'$"):
        check_file_name("model", "..")
    with pytest.raises(ConfigError, match="Windows device name, got 'com3.png'"):
        check_file_name("image", "com3.png")


@given(st.text(max_size=MAX_NAME_LENGTH + 5) | st.sampled_from(HOSTILE_NAMES))
@settings(max_examples=300)
def test_an_accepted_name_is_one_plain_file_name_anywhere(name):
    """Whatever the text: either a name that stays one file in any folder on any system, or one
    line naming the rule and the name."""
    try:
        accepted = check_file_name("task", name)
    except ConfigError as e:
        message = str(e)
        assert message.startswith("task name must ") and "\n" not in message
        assert repr(name)[:20] in message
        return
    assert accepted == name and name.isascii() and 1 <= len(name) <= MAX_NAME_LENGTH
    assert Path(name).name == name and name not in (".", "..") and not name.startswith(".")
    assert os.sep not in name and "/" not in name and "\\" not in name and "\x00" not in name
    assert not Path(name).is_absolute()


DEVICES = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{i}" for p in ("COM", "LPT") for i in range(1, 10)}


@given(st.from_regex(SAFE_NAME, fullmatch=True))
@settings(max_examples=100)
def test_plain_names_are_accepted(name):
    if name.split(".")[0].upper() not in DEVICES:
        assert check_file_name("task", name) == name


def test_path_inside_refuses_what_resolves_outside(tmp_path):
    root = tmp_path / "out"
    root.mkdir()
    assert path_inside(root, "outputs", "noisy", "ge.safetensors") == (
        root / "outputs" / "noisy" / "ge.safetensors"
    )
    for parts in [("..", "x"), ("/etc", "passwd"), ("a", "..", "..", "x"), (".",)]:
        with pytest.raises(ConfigError, match="outside the output folder"):
            path_inside(root, *parts)
    (tmp_path / "elsewhere").mkdir()
    (root / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match="resolves to .*elsewhere.*, outside the output folder"):
        path_inside(root, "link", "x.png")


# --- duplicates --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            BASE | {"tasks": [{"name": "a", "task": "denoise"}, {"name": "a", "task": "inpaint"}]},
            "task name 'a' is used twice; each task needs a name of its own (it names the task's "
            "files)",
        ),
        (
            BASE | {"tasks": [{"task": "denoise"}, {"task": "denoise", "params": {"sigma": 0.5}}]},
            "task name 'denoise' is used twice",
        ),
        (
            BASE
            | {
                "tasks": [
                    {"name": "Noisy", "task": "denoise"},
                    {"name": "noisy", "task": "denoise"},
                ]
            },
            "task name 'noisy' and 'Noisy' differ in case only",
        ),
        (BASE | {"methods": ["identity", "bm3d", "identity"]}, "methods lists 'identity' twice"),
        (
            _task(methods=["bm3d", "bm3d"]),
            "task 'noisy': methods lists 'bm3d' twice",
        ),
        (BASE | {"analyses": ["fid", "fid"]}, "analyses lists 'fid' twice"),
    ],
)
def test_duplicates_are_refused(spec, message, play, capsys, tiny_model_dir):
    assert message in _one_error_line(*play.bench(capsys, spec, tiny_model_dir))
    assert not play.out.exists()


def test_baseline_beside_the_method_it_stands_for_runs_once(tiny_model_dir, tmp_path):
    """ "baseline" is BM3D for denoising: listed beside "bm3d", the pair runs once."""
    spec = spec_from_dict(BASE | {"methods": ["baseline", "bm3d", "identity"]})
    rows = run_bench(spec, load_model(tiny_model_dir), tmp_path)
    assert [(r.task, r.method) for r in rows] == [("noisy", "bm3d"), ("noisy", "identity")]


# --- types and ranges --------------------------------------------------------------------------


TYPE_CASES = [
    (None, "a benchmark spec must be a JSON object, got None"),
    ([BASE], "a benchmark spec must be a JSON object, got [{'n_images': 1"),
    (3, "a benchmark spec must be a JSON object, got 3"),
    ("spec", "a benchmark spec must be a JSON object, got 'spec'"),
    (BASE | {"n_images": "ten"}, "n_images must be an integer >= 1, got 'ten'"),
    (BASE | {"n_images": 2.5}, "n_images must be an integer >= 1, got 2.5"),
    (BASE | {"n_images": 2.0}, "n_images must be an integer >= 1, got 2.0"),
    (BASE | {"n_images": True}, "n_images must be an integer >= 1, got True"),
    (BASE | {"n_images": 0}, "n_images must be an integer >= 1, got 0"),
    (BASE | {"n_images": None}, "n_images must be an integer >= 1, got None"),
    (BASE | {"first_image": -1}, "first_image must be an integer >= 0, got -1"),
    (BASE | {"first_image": "0"}, "first_image must be an integer >= 0, got '0'"),
    (BASE | {"seed": "x"}, "seed must be an integer >= 0, got 'x'"),
    (BASE | {"seed": -1}, "seed must be an integer >= 0, got -1"),
    (BASE | {"seed": False}, "seed must be an integer >= 0, got False"),
    (BASE | {"data": 3}, "data must be a dataset name, got 3"),
    (BASE | {"data": "cifar"}, "unknown dataset 'cifar'; known: folder, mnist5k"),
    (BASE | {"split": "val"}, "split must be one of train, test, all, got 'val'"),
    (BASE | {"split": ["test"]}, "split must be one of train, test, all, got ['test']"),
    (BASE | {"data_options": [1]}, "data_options must be an object, got [1]"),
    (BASE | {"data_options": {"split": "train"}}, "data_options cannot hold 'split'"),
    (
        BASE | {"methods": "identity"},
        "methods must be a non-empty list of method names, got 'identity'",
    ),
    (BASE | {"methods": []}, "methods must be a non-empty list of method names, got []"),
    (
        BASE | {"methods": {"identity": 1}},
        "methods must be a non-empty list of method names, got {'identity': 1}",
    ),
    (BASE | {"methods": ["magic"]}, "unknown method 'magic'; known: aegan, amortized, autoencoder"),
    (BASE | {"tasks": "denoise"}, "tasks must be a non-empty list of task objects, got 'denoise'"),
    (BASE | {"tasks": []}, "tasks must be a non-empty list of task objects, got []"),
    ({"methods": ["identity"]}, "tasks must be a non-empty list of task objects, got []"),
    (
        BASE | {"tasks": {"task": "denoise"}},
        "tasks must be a non-empty list of task objects, got {'task': 'denoise'}",
    ),
    (
        BASE | {"tasks": ["denoise"]},
        'tasks[0] must be an object like {"task": "denoise"}, got \'denoise\'',
    ),
    (BASE | {"tasks": [{"task": "denoise"}, None]}, "tasks[1] must be an object like"),
    (
        BASE | {"tasks": [{"name": "x"}]},
        "tasks[0] needs a 'task' (e.g. \"denoise\"), got {'name': 'x'}",
    ),
    (
        BASE | {"tasks": [{"task": "denoise", "param": {}}]},
        "tasks[0] has unknown keys ['param']; known: ['name', 'task', 'params', 'methods']",
    ),
    (_task(task=3), "task must be a task name (e.g. 'denoise'), got 3"),
    (_task(params="sigma=0.1"), "task 'noisy': params must be an object, got 'sigma=0.1'"),
    (_task(params=[0.1]), "task 'noisy': params must be an object, got [0.1]"),
    (_task(params={"seed": 1}), "task 'denoise' has no parameter seed; it takes noise, sigma"),
    (_task(params={"sigma": "abc"}), "task 'denoise': sigma must be float, got 'abc'"),
    (
        _task(methods="bm3d"),
        "task 'noisy': methods must be a non-empty list of method names, got 'bm3d'",
    ),
    (_task(methods=[]), "task 'noisy': methods must be a non-empty list of method names, got []"),
    (
        BASE | {"method_options": {"ge": "steps=3"}},
        "method_options['ge'] must be an object of options, got 'steps=3'",
    ),
    (BASE | {"method_options": ["ge"]}, "method_options must be an object, got ['ge']"),
    (BASE | {"method_options": {"magic": {}}}, "unknown method 'magic'"),
    (
        BASE | {"method_options": {"baseline": {"x": 1}}},
        "method_options are keyed by the method's own name (e.g. 'bm3d'), not 'baseline'",
    ),
    (
        BASE | {"method_options": {"ge": {"model": "other"}}},
        "method_options['ge'] cannot hold 'model'; the bench's model is used",
    ),
    (
        BASE | {"methods": ["ge"], "method_options": {"ge": {"steps": "3"}}},
        "method 'ge': steps must be int, got '3'",
    ),
    (
        BASE | {"method_options": {"identity": {"steps": 3}}},
        "method 'identity' has no option ['steps']",
    ),
    (BASE | {"analyses": "fid"}, "analyses must be a list of names, got 'fid'"),
    (BASE | {"analyses": [{"fid": 1}]}, "each of analyses must be a name, got {'fid': 1}"),
    (BASE | {"analysis_options": [1]}, "analysis_options must be an object, got [1]"),
    (
        BASE | {"analysis_options": {"convergence": {"every": "x"}}},
        "analysis_options['convergence']['every'] must be an integer, got 'x'",
    ),
    (
        BASE | {"analysis_options": {"attributes": {"methods": "ge"}}},
        "analysis_options['attributes']['methods'] must be a list, got 'ge'",
    ),
    (
        BASE | {"analysis_options": {"classifier": {"rotation": 1}}},
        "analysis_options['classifier']['rotation'] must be true or false, got 1",
    ),
    (
        BASE | {"analysis_options": {"fid": {"n_reference": float("nan")}}},
        "analysis_options['fid']['n_reference'] must be a finite number, got nan",
    ),
    (BASE | {"colour": "red"}, "unknown spec keys ['colour']"),
    (
        BASE | {"first_image": TEST_SPLIT - 1, "n_images": 2},
        f"first_image + n_images must be <= {TEST_SPLIT}, the size of the test split of "
        f"'mnist5k', got {TEST_SPLIT - 1} + 2",
    ),
    (
        BASE | {"n_images": 10**30},
        f"first_image + n_images must be <= {TEST_SPLIT}, the size of the test split of "
        f"'mnist5k', got 0 + {10**30}",
    ),
    (_task(task="cs"), "task 'cs' needs parameter m"),
]


@pytest.mark.parametrize("spec, message", TYPE_CASES, ids=[c[1][:50] for c in TYPE_CASES])
def test_a_wrongly_typed_field_is_refused_by_name(spec, message, play, capsys, tiny_model_dir):
    assert message in _one_error_line(*play.bench(capsys, spec, tiny_model_dir))
    assert not play.out.exists()  # refused before the output folder is made


@pytest.mark.parametrize(
    "raw, message",
    [
        (
            '{"tasks": [{"task": "denoise", "params": {"sigma": NaN}}], "methods": ["identity"]}',
            "task 'denoise': params['sigma'] must be a finite number, got nan",
        ),
        (
            '{"tasks": [{"task": "denoise", "params": {"sigma": Infinity}}]}',
            "task 'denoise': params['sigma'] must be a finite number, got inf",
        ),
        (
            '{"tasks": [{"task": "denoise", "params": {"sigma": 1e999}}]}',
            "task 'denoise': params['sigma'] must be a finite number, got inf",
        ),
        (
            '{"tasks": [{"task": "denoise"}], "method_options": {"ge": {"lr": -Infinity}}}',
            "method_options['ge']['lr'] must be a finite number, got -inf",
        ),
        (
            '{"tasks": [{"task": "denoise"}], "method_options": {"ge": {"x": [1, [NaN]]}}}',
            "method_options['ge']['x'][1][0] must be a finite number, got nan",
        ),
        (
            '{"tasks": [{"task": "denoise"}], "data_options": {"size": NaN}}',
            "data_options['size'] must be a finite number, got nan",
        ),
        (
            '{"tasks": [{"task": "denoise"}], "data_options": {"a": ' + "[" * 40 + "]" * 40 + "}}",
            "data_options nests more than 16 levels of lists and objects",
        ),
        ('{"tasks": ' + "[" * 100_000 + "]" * 100_000 + "}", "nests lists and objects too deeply"),
        ('{"tasks": [', "is not valid JSON: Expecting value: line 1 column 12 (char 11)"),
    ],
)
def test_non_finite_numbers_and_deep_nesting_are_refused(
    raw, message, play, capsys, tiny_model_dir
):
    assert message in _one_error_line(*play.bench(capsys, None, tiny_model_dir, raw=raw))
    assert not play.out.exists()


def test_a_spec_that_is_not_utf8_is_refused(play, capsys, tiny_model_dir):
    data = b'{"tasks": [{"task": "d\xe9noise"}]}'
    play.spec.write_bytes(data)
    before = _snapshot(play.root)
    code = main(["bench", str(play.spec), "--model", str(tiny_model_dir), "--out", str(play.out)])
    message = _one_error_line(code, capsys.readouterr().err)
    at = data.index(b"\xe9")
    assert message == f"{play.spec} is not UTF-8 text: invalid continuation byte at byte {at}"
    assert _snapshot(play.root) == before


def test_a_spec_made_in_python_is_checked_the_same_way():
    with pytest.raises(ConfigError, match="^task name must use only .*, got '../x'$"):
        TaskSpec("../x", "denoise")
    with pytest.raises(ConfigError, match="^n_images must be an integer >= 1, got 2.5$"):
        BenchSpec(n_images=2.5, tasks=(TaskSpec("a", "denoise"),))
    with pytest.raises(ConfigError, match="^methods must be a non-empty list .*, got 'ge'$"):
        BenchSpec(tasks=(TaskSpec("a", "denoise"),), methods="ge")
    with pytest.raises(ConfigError, match="^each task must be a TaskSpec, got"):
        BenchSpec(tasks=({"task": "denoise"},))
    spec = BenchSpec(tasks=[TaskSpec("a", "denoise", methods=["identity"])], methods=["bm3d"])
    assert spec.tasks == (TaskSpec("a", "denoise", methods=("identity",)),)
    assert spec.methods == ("bm3d",)


def test_the_shipped_specs_still_load():
    for path in sorted((Path(__file__).parents[1] / "experiments").glob("*.json")):
        spec = load_spec(path)
        assert spec.tasks and all(check_file_name("task", t.name) for t in spec.tasks), path


# --- the second line of defence: run_bench writes inside out only ------------------------------


def test_run_bench_refuses_a_name_that_slipped_past_the_spec(tiny_model_dir, tmp_path):
    spec = spec_from_dict(BASE)
    object.__setattr__(spec.tasks[0], "name", "../../escaped")  # frozen: bypasses the check
    with pytest.raises(ConfigError, match="task name must use only"):
        run_bench(spec, load_model(tiny_model_dir), tmp_path / "a" / "out")
    assert sorted(p.name for p in tmp_path.rglob("*")) == []


def test_run_bench_does_not_follow_a_link_out_of_its_folder(tiny_model_dir, tmp_path):
    """A folder or file inside ``out`` that links elsewhere is refused, not written through."""
    model = load_model(tiny_model_dir)
    (tmp_path / "elsewhere").mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "outputs").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match="outputs/noisy/identity.safetensors resolves to .*"):
        run_bench(spec_from_dict(BASE), model, out)
    assert list((tmp_path / "elsewhere").iterdir()) == []
    (out / "outputs").unlink()
    (tmp_path / "victim.png").write_bytes(b"precious")
    (out / "grid_noisy.png").symlink_to(tmp_path / "victim.png")
    with pytest.raises(ConfigError, match="grid_noisy.png resolves to .*victim.png, outside"):
        run_bench(spec_from_dict(BASE), model, out)
    assert (tmp_path / "victim.png").read_bytes() == b"precious"


def test_a_results_file_edited_to_name_paths_outside_is_not_followed(tiny_model_dir, tmp_path):
    """Resuming reads ``results.csv``: a row whose task is a path is dropped, not looked up."""
    model = load_model(tiny_model_dir)
    run_bench(spec_from_dict(BASE), model, tmp_path / "out")
    table = (tmp_path / "out" / "results.csv").read_text().splitlines()
    (tmp_path / "out" / "results.csv").write_text(
        "\n".join(table + [table[1].replace("noisy", "../../escaped", 1)]) + "\n"
    )
    rows = run_bench(spec_from_dict(BASE), model, tmp_path / "out", on_progress=pytest.fail)
    assert [(r.task, r.method) for r in rows] == [("noisy", "identity")]
    assert "escaped" not in (tmp_path / "out" / "results.csv").read_text()


# --- hostile specs, generated ------------------------------------------------------------------

# Names a spec could give that would make a run slow (the search methods at their default steps,
# analyses that train a classifier, data sets read from disk): generated text avoids them.
SLOW = {"ge", "ge0", "csgm", "autoencoder", "aegan", "yeh", "lvr", "lvr_sa", "lasso_dct"}
SLOW |= {"sparse_dct", "tv", "richardson_lucy", "fid", "convergence", "latent_map", "attributes"}
SLOW |= {"folder", "rock", "synthetic_rock"}
texts = st.text(max_size=8).filter(lambda s: s not in SLOW)
names = st.sampled_from(HOSTILE_NAMES) | texts | st.from_regex(SAFE_NAME, fullmatch=True)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-3, 4)
    | st.sampled_from([2**63, -(2**63), 10**30])
    | st.floats(allow_nan=True, allow_infinity=True)
    | texts
    | st.sampled_from(HOSTILE_NAMES)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)
# A classical method refuses another task's physics only when it runs, after the progress bar
# started (see docs/bad_inputs.md): the methods and tasks drawn here fit each other (identity takes
# every image task; "baseline" is always a method its task takes, drawn where it is fast: not
# BM3D for denoise).
safe_names = st.from_regex(SAFE_NAME, fullmatch=True).filter(
    lambda n: n.split(".")[0].upper() not in DEVICES
)
valid_tasks = st.one_of(
    st.fixed_dictionaries(
        {"name": safe_names, "task": st.just(task)},
        optional={
            "params": st.fixed_dictionaries({}, optional={"sigma": st.floats(0, 0.5)}),
            "methods": st.lists(st.sampled_from(methods), min_size=1, max_size=2, unique=True),
        },
    )
    for task, methods in [
        ("denoise", ["identity"]),
        ("inpaint", ["identity", "baseline"]),
        ("superres", ["identity", "baseline"]),
    ]
)
valid_extras = {
    "split": st.sampled_from(["test", "train", "all"]),
    "first_image": st.integers(0, TEST_SPLIT - 2),
    "seed": st.integers(0, 2**64),
    "method_options": st.sampled_from([{}, {"identity": {"device": "cpu"}}, {"bm3d": {}}]),
    "data_options": st.just({}),
    "analyses": st.just([]),
    "analysis_options": st.dictionaries(
        st.sampled_from(sorted(ANALYSIS_OPTIONS)),
        st.dictionaries(
            st.sampled_from(sorted({k for o in ANALYSIS_OPTIONS.values() for k in o})),
            json_values,
            max_size=2,
        ),
        max_size=2,
    ),
}
SPEC_FIELDS = sorted(BenchSpec.__dataclass_fields__) + ["colour"]
TASK_FIELDS = ["name", "task", "params", "methods", "param"]
DROP = object()  # a change that removes the field


@st.composite
def hostile_specs(draw) -> object:
    """A valid spec of up to three tasks with zero to two fields (of the spec or of a task)
    replaced by random JSON or a hostile name, or removed; one in ten is random JSON."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    spec = {
        "n_images": draw(st.integers(1, 2)),
        "tasks": draw(
            st.lists(valid_tasks, min_size=1, max_size=3, unique_by=lambda t: t["name"].lower())
        ),
        "methods": ["identity"],
    }
    spec |= draw(st.fixed_dictionaries({}, optional=valid_extras))
    for _ in range(draw(st.integers(0, 2))):
        value = draw(st.just(DROP) | names | json_values)
        if draw(st.booleans()):
            where, key = spec, draw(st.sampled_from(SPEC_FIELDS))
        else:
            where, key = draw(st.sampled_from(spec["tasks"])), draw(st.sampled_from(TASK_FIELDS))
        if value is DROP:
            where.pop(key, None)
        else:
            where[key] = value
    if "methods" not in spec:  # the default methods search at their default steps: too slow here
        spec["methods"] = ["identity"]
    return spec


def _check_outcome(code: int, err: str) -> str | None:
    """Exit code 0, or 2 with one error line (returned)."""
    assert code in (0, 2), err
    if code == 2:
        return _one_error_line(code, err)
    return None


@given(spec=hostile_specs())
@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_a_hostile_spec_is_run_or_refused_in_one_line_and_writes_inside_out_only(
    spec, capsys, tiny_model_dir
):
    with tempfile.TemporaryDirectory() as folder:
        play = Playground(Path(folder))
        message = _check_outcome(*play.bench(capsys, spec, tiny_model_dir))
        event("ran" if message is None else f"refused: {message[:30]}")
        if message is not None:
            assert not play.out.exists() or message.startswith("method ")


def _either(good, bad):
    """``good`` or ``bad``, each half of the time."""
    return st.booleans().flatmap(lambda ok: good if ok else bad)


@given(
    first=_either(safe_names, names | json_values),
    second=_either(safe_names | st.sampled_from(["NOISY", "noisy"]), names | json_values),
    method=_either(st.sampled_from(["identity", "bm3d"]), names),
)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_hostile_names_are_refused_by_the_name_rule_or_run_inside_out(
    first, second, method, capsys, tiny_model_dir
):
    """Two tasks and a method named by the strategy: the run happens exactly when every name
    passes :func:`check_file_name` and the task names differ (ignoring case)."""
    spec = {
        "n_images": 1,
        "tasks": [{"name": first, "task": "denoise"}, {"name": second, "task": "inpaint"}],
        "methods": ["identity"],
        "method_options": {method: {}},
    }
    expected = None
    try:
        check_file_name("task", first)
        check_file_name("task", second)
        if first.casefold() == second.casefold():
            expected = "is used twice" if first == second else "differ in case only"
        else:
            check_file_name("method", method)
            if method == "baseline":
                expected = "not 'baseline'"
            elif method not in {"identity", "bm3d"}:
                expected = f"unknown method {method!r}"
    except ConfigError as e:
        expected = str(e)
    with tempfile.TemporaryDirectory() as folder:
        play = Playground(Path(folder))
        message = _check_outcome(*play.bench(capsys, spec, tiny_model_dir))
        event("ran" if message is None else "refused")
        if expected is None:
            assert message is None
            assert (play.out / f"grid_{first}.png").is_file()
            assert (play.out / "outputs" / second / "identity.safetensors").is_file()
        else:
            assert message is not None and expected in message
            assert not play.out.exists()


def test_generated_numbers_cover_the_non_finite_ones():
    """The strategies above do reach NaN and infinity (a guard against a narrowed strategy)."""
    found = set()

    @given(st.floats(allow_nan=True, allow_infinity=True))
    @settings(max_examples=200)
    def draw(x):
        if not math.isfinite(x):
            found.add("nan" if math.isnan(x) else "inf")

    draw()
    assert found == {"nan", "inf"}
