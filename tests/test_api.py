"""The Python API: sweep from a dict, load_run's frames equal the files, the CLI's errors, partial runs, the notebook."""

from __future__ import annotations

import re
import shutil

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import init_lab
from init_lab.api import _config
from init_lab.catalog.errors import ConfigError
from init_lab.cli import app
from init_lab.config.loading import config_from_dict

from .helpers import REPO, TINY, copy_run

CONFIG = yaml.safe_load(TINY)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return init_lab.sweep(CONFIG, out=tmp_path_factory.mktemp("api"), progress=False)


def test_sweep_from_a_dict_and_frames_equal_the_files(run):
    assert isinstance(run, init_lab.Run) and run.status == "completed"
    assert run.config.name == "tiny" and run.config.training.epochs == 2
    summary = pd.read_csv(run.path / "summary.csv")
    assert run.summary["error"].isna().all() and summary["error"].isna().all()  # None here, NaN from the CSV
    columns = [c for c in summary.columns if c != "error"]
    pd.testing.assert_frame_equal(run.summary[columns].reset_index(drop=True), summary[columns], check_dtype=False)
    for table, frame in (("epochs", run.epochs), ("layers", run.layers), ("steps", run.steps),
                         ("step_layers", run.step_layers)):
        for tid in summary["trial_id"]:
            on_disk = pd.read_csv(run.path / "trials" / tid / f"{table}.csv")
            mine = frame[frame["trial_id"] == tid][on_disk.columns].reset_index(drop=True)
            pd.testing.assert_frame_equal(mine, on_disk, check_dtype=False)
    # every frame carries the trial's axes
    he_relu = run.epochs[(run.epochs["initializer"] == "he_normal") & (run.epochs["activation"] == "relu")]
    assert set(he_relu["trial_id"]) == {"000_he_normal-relu-s0"} and set(he_relu["seed"]) == {0}
    assert list(he_relu["epoch"]) == [0, 1, 2]


def test_histograms_frame_sums_to_the_probe_values(run):
    h = run.histograms("001_he_normal-tanh-s0")
    assert set(h["quantity"]) == {"activation", "gradient"} and set(h["when"]) == {"epoch", "step"}
    per_layer = h[(h["when"] == "epoch") & (h["quantity"] == "gradient")].groupby(["epoch", "layer"])["count"].sum()
    assert (per_layer == 120 * 16).all()  # 120 probe images × 16 units, every value in some bin
    assert h["activation"].eq("tanh").all() and (h["bin_low"] < h["bin_high"]).all()


def test_leaderboard_pivot_compare_and_report(run, tmp_path):
    board = run.leaderboard("test_accuracy")
    assert list(board["rank"]) == [1, 2, 3, 4]
    assert board["test_accuracy"].is_monotonic_decreasing
    assert set(run.pivot()["initializer"]) == {"he_normal", "zeros"}
    other = copy_run(run.path, tmp_path / "copy")
    delta = init_lab.compare(run, other)
    assert (delta["in"] == "both").all() and (delta["delta"] == 0).all()
    written = run.report(plots=False)
    assert {p.name for p in written} >= {"leaderboard.csv", "report.html", "report.md"}


def test_bad_config_raises_the_cli_message(tmp_path):
    bad = TINY.replace("he_normal, zeros", "he_norml, zeros")
    path = tmp_path / "bad.yaml"
    path.write_text(bad)
    cli = CliRunner().invoke(app, ["sweep", str(path), "--out", str(tmp_path / "runs")])
    assert cli.exit_code != 0 and "he_norml" in cli.output
    with pytest.raises(ConfigError) as from_file:
        init_lab.sweep(path, out=tmp_path / "runs")
    words = lambda text: " ".join(text.split())  # noqa: E731  (the terminal wraps long lines)
    assert words(str(from_file.value)) in words(cli.output)  # a file: the very message the CLI prints
    with pytest.raises(ConfigError) as from_dict:
        init_lab.sweep(yaml.safe_load(bad), out=tmp_path / "runs")
    message = str(from_dict.value)
    assert "<dict>: grid.initializer[0]: unknown initializer 'he_norml'. Did you mean 'he_normal'?" in message
    assert message.split("<dict>: ")[1] == re.split(r"bad\.yaml:\d+: ", str(from_file.value))[1]  # after the origin
    with pytest.raises(ConfigError, match="training.epochs"):
        init_lab.sweep(CONFIG, overrides=["training.epochs=0"], out=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()  # nothing was written


def test_load_run_on_a_partial_run(run, tmp_path):
    partial = copy_run(run.path, tmp_path / "partial")
    shutil.rmtree(partial / "trials" / "003_zeros-tanh-s0")
    loaded = init_lab.load_run(partial)
    assert loaded.summary.set_index("trial_id").loc["003_zeros-tanh-s0", "status"] == "pending"
    assert "003_zeros-tanh-s0" not in set(loaded.epochs["trial_id"])
    assert loaded.histograms("003_zeros-tanh-s0").empty
    assert list(loaded.leaderboard()["trial_id"])[-1] == "003_zeros-tanh-s0"  # unfinished last


@pytest.mark.slow
def test_the_example_notebook_runs_headless(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(REPO / "examples" / "quickstart.ipynb", as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the plot was drawn
    bars = [o["data"]["text/html"] for o in outputs if "<progress" in o.get("data", {}).get("text/html", "")]
    assert bars and 'value="4" max="4"' in bars[0] and "done" in bars[0]  # Jupyter's progress bar, at its end
    assert (tmp_path / "runs" / "latest" / "report" / "report.html").is_file()


def test_probe_returns_frames():
    frames = init_lab.probe(CONFIG, seeds=2, jacobian_examples=2, batch=32)
    assert set(frames) == {"summary", "layers", "spectra"}
    assert len(frames["summary"]) == 4 and set(frames["layers"]["seed"]) == {0, 1}
    assert len(frames["layers"]) == 4 * 2 * 2  # combinations × seeds × hidden layers
    assert (frames["spectra"]["singular_value"] >= 0).all()


# --- every documented form of `config`, with and without overrides ---------------------------------


@pytest.fixture(params=["dict", "path", "config"])
def config_like(request, tmp_path):
    """The tiny config in each form the API documents: a dict as the YAML would be, a YAML path, a config."""
    if request.param == "dict":
        return CONFIG
    if request.param == "path":
        path = tmp_path / "tiny.yaml"
        path.write_text(TINY)
        return path
    return config_from_dict(CONFIG)


@pytest.mark.parametrize("overrides", [None, ["training.epochs=1", "grid.initializer=[{name: random_normal, stddev: 0.1}]"]])
def test_every_form_of_config_resolves_to_the_same_config(config_like, overrides):
    """A validated config with overrides (the README's form) used to fail: its grid entries were dumped as
    {name, params} and read back as a parameter called 'params'."""
    expected = config_from_dict(CONFIG, overrides=overrides)
    got = _config(config_like, overrides)
    assert got.model_copy(update={"name": "x"}).resolved() == expected.model_copy(update={"name": "x"}).resolved()
    if overrides:
        assert got.training.epochs == 1 and got.grid.initializer[0].kwargs == {"stddev": 0.1}


def test_sweep_and_probe_take_a_config_object_with_overrides(tmp_path):
    """The case that raised "initializer 'he_normal' has no parameter 'params'" on a15a15c, end to end."""
    cfg = config_from_dict(CONFIG)
    overrides = ["training.epochs=1", "grid.activation=[{name: leaky_relu, alpha: 0.2}]"]
    run = init_lab.sweep(cfg, out=tmp_path, overrides=overrides, progress=False)
    assert run.status == "completed" and len(run.summary) == 2
    assert run.config.training.epochs == 1
    assert run.config.resolved()["grid"]["activation"] == [{"name": "leaky_relu", "alpha": 0.2}]
    frames = init_lab.probe(cfg, overrides=["grid.initializer=[he_normal]"], seeds=1, jacobian_examples=2, batch=16)
    assert len(frames["summary"]) == 2  # he_normal × (relu, tanh)
