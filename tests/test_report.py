"""`initlab report`: tables checked against independent pandas computations, files, escaping, partial runs."""

from __future__ import annotations

import io
import json
import re
import shutil
import struct
import sys

import numpy as np
import pandas as pd
import pytest
from plotly.offline import get_plotlyjs
from typer.testing import CliRunner

from init_lab.analysis import histograms
from init_lab.cli import app
from init_lab.report import plots
from init_lab.report.run import load_run
from init_lab.report.tables import comparison, leaderboard, pivot
from init_lab.report.tbexport import histogram_fields

from .helpers import HOSTILE, TINY, block_imports, copy_run

runner = CliRunner()


RUN_A = ["grid.seed=[0, 1]"]  # the same run A as test_report_html's: trained once per session


@pytest.fixture(scope="module")
def runs(reference_run, tmp_path_factory):
    """Two real runs of the same 2×2×2-seed grid, differing only in learning rate (this module's copies: its
    tests write reports into them)."""
    base = tmp_path_factory.mktemp("runs")
    a = reference_run(TINY, RUN_A)
    b = reference_run(TINY, RUN_A + ["training.learning_rate=0.003"])
    return copy_run(a, base / "a" / a.name), copy_run(b, base / "b" / b.name)


def records(run_dir):
    return pd.DataFrame([json.loads(p.read_text()) for p in sorted(run_dir.glob("trials/*/trial.json"))])


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


NEW_TRIAL_FILES = ("steps.csv", "step_layers.csv", "histograms.npz")


def tensorboard_accumulator(path):
    pytest.importorskip("tensorboard")
    import types

    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    from tensorboard.backend.event_processing.event_accumulator import HISTOGRAMS, EventAccumulator

    acc = EventAccumulator(str(path), size_guidance={HISTOGRAMS: 0})  # 0: keep every step, not a sample
    acc.Reload()
    return acc


def test_leaderboard_order(runs):
    run = load_run(runs[0])
    board = leaderboard(run)
    values = board["best_val_accuracy"].tolist()
    assert values == sorted(values, reverse=True) and board["rank"].tolist() == list(range(1, 9))
    loss_board = leaderboard(run, "final_loss")
    assert loss_board["final_loss"].tolist() == sorted(loss_board["final_loss"].tolist())


def test_pivot_matches_an_independent_computation(runs):
    run = load_run(runs[0])
    table = pivot(run, "test_accuracy").set_index(["initializer", "activation"])
    rec = records(runs[0])
    rec["initializer"] = rec["spec"].map(lambda s: s["initializer"])
    rec["activation"] = rec["spec"].map(lambda s: s["activation"])
    expected = rec.groupby(["initializer", "activation"])["test_accuracy"].agg(["mean", "std", "count"])
    for key, row in expected.iterrows():
        assert table.loc[key, "mean"] == pytest.approx(row["mean"], abs=1e-12)
        assert table.loc[key, "std"] == pytest.approx(row["std"], abs=1e-12)
        assert table.loc[key, "n"] == row["count"] == 2
    assert list(dict.fromkeys(table.index.get_level_values(0))) == ["he_normal", "zeros"]


def test_every_output_file_is_produced_and_parseable(runs, tmp_path):
    run_dir = copy_run(runs[0], tmp_path / runs[0].name)
    result = runner.invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "he_normal" in result.output and "mean ± std over 2 seeds" in result.output
    report = run_dir / "report"
    assert {p.name for p in report.iterdir()} == {
        "report.md", "report.html", "leaderboard.csv", "pivot.csv", "cells.csv", "comparisons.csv", "heatmap.png",
        "learning_curves.png",
        "diagnostics.png", "training_signals.png", "histograms.png",
    }
    assert len(pd.read_csv(report / "leaderboard.csv")) == 8
    assert len(pd.read_csv(report / "pivot.csv")) == 4
    # the drawn combinations: he_normal with relu and tanh (zeros, constant weights, is summarised); histograms: a
    # row per combination of four panels; training signals: a row per activation; none wider than the page
    for name, min_w, min_h in [("heatmap.png", 400, 200), ("learning_curves.png", 600, 400),
                               ("diagnostics.png", 1300, 500), ("histograms.png", 1300, 500),
                               ("training_signals.png", 600, 500)]:
        data = (report / name).read_bytes()
        w, h = png_size(data)
        assert min_w <= w <= plots.PAGE_INCHES * plots.DPI and h >= min_h and len(data) > 10_000, name
    html_text = (report / "report.html").read_text()
    page = html_text.replace(get_plotlyjs(), "")  # the embedded library names map-tile URLs it never loads here
    assert page.count("data:image/png;base64,") == 3 and "http" not in page  # heatmap and curves are charts
    md = (report / "report.md").read_text()
    assert "Leaderboard" in md and "](histograms.png)" in md and "](training_signals.png)" in md
    assert "Glorot & Bengio (2010), Figs. 3–7" in html_text.replace("&amp;", "&")


@pytest.mark.parametrize("fmt", ["json", "csv", "markdown", "html", "table"])
def test_formats_for_scripting(runs, fmt):
    result = runner.invoke(app, ["report", str(runs[0]), "--format", fmt, "--no-files"])
    assert result.exit_code == 0, result.output
    if fmt == "json":
        data = json.loads(result.stdout)
        assert len(data) == 8 and data[0]["rank"] == 1 and "best_val_accuracy" in data[0]
    elif fmt == "csv":
        import io

        assert len(pd.read_csv(io.StringIO(result.stdout))) == 8
    elif fmt == "markdown":
        assert result.stdout.startswith("| rank |")
    elif fmt == "html":
        assert result.stdout.startswith("<!DOCTYPE html>")


def test_metric_choice_and_unknown_metric(runs):
    result = runner.invoke(app, ["report", str(runs[0]), "--metric", "epochs_to_0.9", "--format", "json", "--no-files"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["report", str(runs[0]), "--metric", "test_acc", "--no-files"])
    assert result.exit_code == 1 and "Did you mean 'test_accuracy'?" in result.stderr


def test_hostile_strings_are_escaped(runs, tmp_path):
    run_dir = copy_run(runs[0], tmp_path / runs[0].name)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["dataset"]["source"] = HOSTILE
    manifest["environment"]["device"] = HOSTILE
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    trial = next(run_dir.glob("trials/*/trial.json"))
    rec = json.loads(trial.read_text())
    trial.write_text(json.dumps({**rec, "status": "failed", "error": f"ValueError: {HOSTILE} | *bold* [x](y)"}))
    result = runner.invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    html_text = (run_dir / "report" / "report.html").read_text()
    md = (run_dir / "report" / "report.md").read_text()
    assert html_text.count("<script") == 3 and "<script>alert" not in html_text  # ours: plotly.js, data, drawing
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_text
    assert "<script>" not in md and "&lt;script&gt;" in md and "\\*bold\\*" in md and "\\[x\\]\\(y\\)" in md


def test_partial_run_reports_what_is_finished_and_says_what_is_missing(runs, tmp_path):
    run_dir = copy_run(runs[0], tmp_path / runs[0].name)
    trials = sorted((run_dir / "trials").iterdir())
    shutil.rmtree(trials[-1])  # never started
    rec = json.loads((trials[-2] / "trial.json").read_text())
    (trials[-2] / "trial.json").write_text(json.dumps({**rec, "status": "running"}))
    result = runner.invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "6 of 8 trials finished" in result.output and "Not finished" in result.output
    board = pd.read_csv(run_dir / "report" / "leaderboard.csv")
    assert len(board) == 8 and set(board["status"]) == {"completed", "running", "pending"}
    assert board["status"].tolist()[-2:] == ["running", "pending"]


def test_not_a_run_directory(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 1 and "not an initlab run directory" in result.stderr
    result = runner.invoke(app, ["report", str(tmp_path / "nope")])
    assert result.exit_code == 1 and "not a directory" in result.stderr


def test_comparison_lines_up_shared_trials(runs):
    a, b = load_run(runs[0]), load_run(runs[1])
    table = comparison(a, b, "test_accuracy")
    assert len(table) == 8 and set(table["in"]) == {"both"}
    ta, tb = records(runs[0]), records(runs[1])
    key = lambda r: (r["spec"]["initializer"], r["spec"]["activation"], r["spec"]["seed"])  # noqa: E731
    expected = {key(r): rb["test_accuracy"] - r["test_accuracy"] for (_, r), (_, rb) in zip(ta.iterrows(), tb.iterrows())}
    for row in table.itertuples():
        assert row.delta == pytest.approx(expected[(row.initializer, row.activation, row.seed)])
    result = runner.invoke(app, ["report", str(runs[0]), str(runs[1]), "--metric", "test_accuracy"])
    assert result.exit_code == 0 and "8 shared trials" in result.output


def test_tensorboard_export(runs, tmp_path):
    pytest.importorskip("tensorboard")
    import types

    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logdir = tmp_path / "tb"
    result = runner.invoke(app, ["report", str(runs[0]), "--tensorboard", str(logdir), "--no-files"])
    assert result.exit_code == 0, result.output
    trial_dirs = [p for p in logdir.iterdir() if p.is_dir()]
    assert len(trial_dirs) == 8
    acc = EventAccumulator(str(trial_dirs[0]))
    acc.Reload()
    assert "epoch/val_accuracy" in acc.Tags()["scalars"]
    assert [e.step for e in acc.Scalars("epoch/loss")] == [0, 1, 2]


def test_tensorboard_missing_is_a_clear_message(runs, tmp_path, monkeypatch):
    block_imports(monkeypatch, "tensorboard")
    result = runner.invoke(app, ["report", str(runs[0]), "--tensorboard", str(tmp_path / "tb"), "--no-files"])
    assert result.exit_code == 1 and "pip install 'initlab[tensorboard]'" in result.stderr


def test_learning_curves_draw_training_from_steps(runs, figures):
    """Training: steps.csv's mean over seeds against progress; validation: epochs.csv per epoch, epoch 0 included."""
    run = load_run(runs[0])
    assert not run.steps.empty and run.steps["progress"].min() == 0.0
    assert plots.learning_curves(run) == b"png"
    loss_axes = figures[0].axes[0]  # first activation's loss panel; its first initializer comes first
    ids = run.summary.query("initializer == 'he_normal' and activation == 'relu'")["trial_id"]
    steps = run.steps[run.steps["trial_id"].isin(ids)]
    expected = steps.groupby("progress")["loss"].mean()  # both seeds log at the same progress values
    train, val = loss_axes.lines[0], loss_axes.lines[1]
    np.testing.assert_allclose(train.get_xdata(), expected.index)
    np.testing.assert_allclose(train.get_ydata(), expected.to_numpy())
    epochs = run.epochs[run.epochs["trial_id"].isin(ids)].groupby("epoch")["val_loss"].mean()
    assert list(val.get_xdata()) == [0, 1, 2] and val.get_linestyle() == "--"
    np.testing.assert_allclose(val.get_ydata(), epochs.to_numpy())
    assert figures[0].axes[-1].get_xlabel() == "epoch (steps as fractions)"  # bottom row: accuracy


def test_learning_curves_without_steps_fall_back_to_epochs(runs, figures):
    run = load_run(runs[0])
    run.steps = run.steps.iloc[0:0]
    plots.learning_curves(run)
    train = figures[0].axes[0].lines[0]
    assert list(train.get_xdata()) == [0, 1, 2] and train.get_marker() == "o"
    assert figures[0].axes[-1].get_xlabel() == "epoch"


def test_histogram_figure_shows_first_seed_per_combination(runs, figures):
    run = load_run(runs[0])
    assert plots.histograms_plot(run) == b"png"
    fig = figures[0]
    assert len(fig.axes) == 2 * 4  # the drawn combinations (zeros, constant weights, is summarised), four panels each
    first = run.summary.sort_values(["seed", "index"]).drop_duplicates(["initializer", "activation"])
    first = first.loc[first["initializer"] != "zeros", "trial_id"]
    assert [ax.get_label() for ax in fig.axes[::4]] == first.tolist()
    assert fig.axes[0].get_ylabel().startswith("he_normal\n+ relu")
    (a, b, c, d) = fig.axes[:4]
    h = run.histogram_arrays(first.iloc[0])
    assert "≈0" in [t.get_text() for t in c.get_xticklabels()] and c.get_xscale() == "log"
    assert f"after epoch {h['epoch'][-1]}" in b.get_title() and "initialization" in a.get_title()
    # a layer's activation fractions, as drawn, are its counts over all of its values
    drawn = a.patches[0].get_data().values
    counts = h["epoch_act"][0, 0]
    np.testing.assert_allclose(drawn, counts[1:-1] / counts.sum())


def test_fold_gradients_counts_magnitudes():
    edges = histograms.gradient_edges()
    values = np.array([-0.5, 0.5, 0.3, 0.0, 1e-12, -2e-3, 1e6])
    counts, _ = histograms.count(values, edges)
    magnitude_edges, inner, zero, beyond = plots.fold_gradients(counts, edges)
    assert magnitude_edges[0] > 0 and np.all(np.diff(magnitude_edges) > 0)
    assert (zero, beyond, inner.sum()) == (2, 1, 4)
    expected, _ = np.histogram(np.abs(values[[0, 1, 2, 5]]), magnitude_edges)
    np.testing.assert_array_equal(inner, expected)


def test_training_signals_figure(runs, figures):
    run = load_run(runs[0])
    assert not run.step_layers.empty
    assert plots.training_signals_plot(run) == b"png"
    panels = [ax for ax in figures[0].axes if ax.get_title()]
    assert len(panels) == 2  # he_normal with relu and tanh: zeros (constant weights) is summarised
    tid = panels[0].get_label()
    assert panels[0].get_title() == "he_normal (best/reference)"
    steps = run.step_layers[(run.step_layers["trial_id"] == tid) & (run.step_layers["layer"] == 0)]
    epochs = run.layers[(run.layers["trial_id"] == tid) & (run.layers["layer"] == 0)]
    mean = panels[0].lines[0]  # layer 1's mean: logged steps, then the later epoch ends
    later = epochs[epochs["epoch"] > steps["progress"].max()]
    np.testing.assert_allclose(mean.get_xdata(), [*steps["progress"], *later["epoch"]])
    np.testing.assert_allclose(mean.get_ydata(), [*steps["act_mean"], *later["act_mean"]])


def test_run_without_step_files_or_histograms_still_reports(runs, tmp_path):
    run_dir = copy_run(runs[0], tmp_path / runs[0].name)
    trials = sorted((run_dir / "trials").iterdir())
    for trial in trials:
        for name in NEW_TRIAL_FILES:
            (trial / name).unlink(missing_ok=True)
    (trials[0] / "histograms.npz").write_bytes(b"not a histogram")  # unreadable: skipped like a missing one
    run = load_run(run_dir)
    assert run.steps.empty and run.step_layers.empty and "progress" in run.steps
    assert run.histogram_arrays(trials[0].name) is None
    assert plots.histograms_plot(run) is None and plots.training_signals_plot(run) is None
    result = runner.invoke(app, ["report", str(run_dir), "--tensorboard", str(tmp_path / "tb")])
    assert result.exit_code == 0, result.output
    names = {p.name for p in (run_dir / "report").iterdir()}
    assert "learning_curves.png" in names and not names & {"histograms.png", "training_signals.png"}
    assert "Activation and gradient histograms" not in (run_dir / "report" / "report.md").read_text()


def test_tensorboard_export_has_step_scalars_and_histograms(runs, tmp_path):
    logdir = tmp_path / "tb"
    result = runner.invoke(app, ["report", str(runs[0]), "--tensorboard", str(logdir), "--no-files"])
    assert result.exit_code == 0, result.output
    run = load_run(runs[0])
    tid = run.summary["trial_id"].iloc[0]
    acc = tensorboard_accumulator(logdir / tid)
    steps = run.steps[run.steps["trial_id"] == tid]
    assert [e.step for e in acc.Scalars("step/loss")] == steps["step"].tolist()
    np.testing.assert_allclose([e.value for e in acc.Scalars("step/accuracy")], steps["accuracy"], rtol=1e-6)
    h = run.histogram_arrays(tid)
    name = h["layers"][0]
    assert {f"activations/{name}", f"gradients/{name}", f"activations_steps/{name}"} <= set(acc.Tags()["histograms"])
    grads = acc.Histograms(f"gradients/{name}")
    assert [e.step for e in grads] == h["epoch"].tolist()
    assert [e.step for e in acc.Histograms(f"activations_steps/{name}")] == h["step"].tolist()
    proto = grads[0].histogram_value
    assert list(proto.bucket) == h["epoch_grad"][0, 0].tolist() and proto.num == h["epoch_grad"][0, 0].sum()


def test_histogram_fields_follow_tensorboard_buckets():
    """bucket i holds values from bucket_limit[i-1] to bucket_limit[i]; the under- and overflow buckets are
    one bin wide; TensorBoard's own conversion gives well-formed buckets holding every count."""
    fields = histogram_fields(np.array([1, 2, 0, 3, 0]), np.array([0.0, 1.0, 2.0, 3.0]))
    assert fields["bucket_limit"] == [0.0, 1.0, 2.0, 3.0, 4.0] and fields["bucket"] == [1, 2, 0, 3, 0]
    assert (fields["min"], fields["max"], fields["num"]) == (-1.0, 3.0, 6.0)
    assert fields["sum"] == pytest.approx(-0.5 + 2 * 0.5 + 3 * 2.5)
    assert fields["sum_squares"] == pytest.approx(0.25 + 2 * 0.25 + 3 * 6.25)
    assert histogram_fields(np.zeros(5), np.array([0.0, 1.0, 2.0, 3.0])) is None
    pytest.importorskip("tensorboard")
    import types

    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    from tensorboard import data_compat
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.util import tensor_util

    value = summary_pb2.Summary.Value(tag="h", histo=summary_pb2.HistogramProto(**fields))
    buckets = tensor_util.make_ndarray(data_compat.migrate_value(value).tensor)
    np.testing.assert_allclose(buckets, [[-1, 0, 1], [0, 1, 2], [1, 2, 0], [2, 3, 3]])


# --- runs the other tests do not train: diverged trials, swept axes ----------------------------------------------

DIVERGING = ["grid.initializer=[he_normal, {name: random_normal, stddev: 1.0e+6}]", "grid.activation=[relu]",
             "training.optimizer=sgd", "training.learning_rate=0.5"]


def strict_json(text: str):
    """json.loads that refuses NaN and ±Infinity (Python's json accepts them; JSON does not)."""
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_a_run_with_diverged_trials_reports_in_every_format(reference_run, tmp_path):
    """NaN and inf losses (a diverged trial's epochs) never reach a JSON document, nor break CSV, Markdown,
    HTML or the terminal; the diverged trial is named as such."""
    run_dir = copy_run(reference_run(TINY, DIVERGING), tmp_path / "run")
    statuses = {r["trial_id"]: r["status"] for r in records(run_dir).to_dict("records")}
    assert sorted(statuses.values()) == ["completed", "diverged"]
    diverged = next(t for t, s in statuses.items() if s == "diverged")
    epochs = pd.read_csv(run_dir / "trials" / diverged / "epochs.csv")
    assert not np.isfinite(epochs["loss"]).all()  # the run really holds non-finite numbers
    for fmt in ("table", "markdown", "csv", "json", "html"):
        result = runner.invoke(app, ["report", str(run_dir), "--format", fmt, "--no-files"])
        assert result.exit_code == 0 and result.exception is None, (fmt, result.output)
        assert "diverged" in result.stdout, fmt
        if fmt == "json":
            rows = strict_json(result.stdout)
            assert {r["trial_id"]: r["status"] for r in rows} == statuses
        if fmt == "csv":
            assert set(pd.read_csv(io.StringIO(result.stdout))["status"]) == {"completed", "diverged"}
    written = runner.invoke(app, ["report", str(run_dir)])
    assert written.exit_code == 0 and written.exception is None, written.output
    page = (run_dir / "report" / "report.html").read_text()
    (data,) = re.findall(r'<script type="application/json" id="initlab-charts">(.*?)</script>', page, re.S)
    strict_json(data)  # the interactive charts' data: Plotly reads it with JSON.parse
    for path in (run_dir / "report").glob("*.json"):
        strict_json(path.read_text())
    assert "diverged" in (run_dir / "report" / "report.md").read_text()


SWEPT = ["grid.initializer=[he_normal]", "grid.activation=[relu]", "grid.learning_rate=[0.01, 0.003]",
         "grid.depth=[1, 2]", "training.epochs=1"]


def test_swept_axes_are_columns_of_the_report_and_tensorboard_hparams(reference_run, tmp_path):
    run_dir = copy_run(reference_run(TINY, SWEPT), tmp_path / "run")
    board = leaderboard(load_run(run_dir))
    assert len(board) == 4
    assert sorted(zip(board["depth"], board["learning_rate"])) == [(1, 0.003), (1, 0.01), (2, 0.003), (2, 0.01)]
    table = pivot(load_run(run_dir))
    assert {"depth", "learning_rate"} <= set(table.columns) and len(table) == 4  # a row per swept cell
    result = runner.invoke(app, ["report", str(run_dir), "--format", "csv", "--no-files"])
    assert result.exit_code == 0, result.output
    printed = pd.read_csv(io.StringIO(result.stdout))
    assert {"depth", "learning_rate"} <= set(printed.columns)
    written = runner.invoke(app, ["report", str(run_dir)])
    assert written.exit_code == 0, written.output
    markdown = (run_dir / "report" / "report.md").read_text()
    for depth in (1, 2):  # a heatmap per swept cell (Markdown escapes "_" and ".")
        assert f"### depth={depth}, learning\\_rate=0\\.003" in markdown and f"depth={depth}, learning\\_rate=0\\.01" in markdown

    logdir = tmp_path / "tb"
    assert runner.invoke(app, ["report", str(run_dir), "--tensorboard", str(logdir), "--no-files"]).exit_code == 0
    pytest.importorskip("tensorboard")
    from tensorboard.plugins.hparams import plugin_data_pb2

    def hparams_of(trial_dir):
        acc = tensorboard_accumulator(trial_dir)
        content = acc.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
        return plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams

    for row in board.itertuples():
        hp = hparams_of(logdir / row.trial_id)
        assert hp["depth"].number_value == row.depth and hp["learning_rate"].number_value == pytest.approx(row.learning_rate)
        assert hp["initializer"].string_value == "he_normal"
