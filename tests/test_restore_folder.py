"""A restore folder shared by two runs, and hostile option values through the command line."""

import csv
import json

from conftest import write_test_digits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generative_encoder.apps.restore_folder import FolderRestore, RestoreRequest
from generative_encoder.cli import main
from generative_encoder.io.checkpoints import load_model


def _rows(path):
    with open(path, newline="") as f:
        return [r["image"] for r in csv.DictReader(f)]


def test_two_runs_into_one_folder_keep_each_others_rows(tiny_model_dir, tmp_path):
    """Run A plans first, run B (other inputs, same settings) finishes, then A runs: A's
    metrics.csv write merges with B's rows instead of dropping them."""
    model = load_model(tiny_model_dir)
    first = write_test_digits(tmp_path / "a", 1)  # digit0.png
    second = write_test_digits(tmp_path / "b", 2)
    (second / "digit0.png").unlink()
    (second / "digit1.png").rename(second / "other1.png")
    out = tmp_path / "out"

    def request(folder):
        return RestoreRequest(
            inputs=[folder],
            output=out,
            model=model,
            model_name="tiny",
            task="denoise",
            params={"sigma": 0.1},
            method="identity",
        )

    run_a = FolderRestore(request(first))
    FolderRestore(request(second)).run()
    run_a.run()
    assert sorted(_rows(out / "metrics.csv")) == ["digit0.png", "other1.png"]


OPTION_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.text(max_size=8),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
    st.none(),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from(["--method-opt", "--param"]),
    key=st.sampled_from(
        ["steps", "lr", "restarts", "ensemble", "latent_weight", "sigma", "clip", "p"]
    ),
    value=OPTION_VALUES,
)
def test_hostile_option_values_get_one_line_or_a_result(
    tiny_model_dir, tmp_path_factory, capsys, kind, key, value
):
    """Any value of any option: exit 0 or 2, never a traceback, at most one line on stderr when
    refused, nothing written outside -o and no input changed."""
    root = tmp_path_factory.mktemp("hostile")
    inputs = write_test_digits(root / "in", 1)
    before = {p: p.read_bytes() for p in inputs.iterdir()}
    text = json.dumps(value) if not isinstance(value, str) else value
    argv = [
        "restore",
        str(inputs),
        "-o",
        str(root / "out"),
        "--model",
        str(tiny_model_dir),
        "--task",
        "denoise",
        "--method",
        "csgm",
        "--method-opt",
        "steps=2",
        kind,
        f"{key}={text}",
    ]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code in (0, 2) and "Traceback" not in err + out
    if code == 2:
        lines = err.rstrip("\n").split("\n")
        assert lines[-1].startswith("genc: error: ")
    assert {p.name for p in root.iterdir()} <= {"in", "out"}
    assert {p: p.read_bytes() for p in inputs.iterdir()} == before
