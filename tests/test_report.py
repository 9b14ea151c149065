"""`initlab report`: tables checked against independent pandas computations, files, escaping, partial runs."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from init_lab.cli import app
from init_lab.config.schema import config_from_text
from init_lab.report.tables import comparison, leaderboard, load_run, pivot
from init_lab.run.sweep import run_sweep

from .conftest import TINY

runner = CliRunner()
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two real runs of the same 2×2×2-seed grid, differing only in learning rate."""
    base = tmp_path_factory.mktemp("runs")
    cfg = config_from_text(TINY, overrides=["grid.seed=[0, 1]"])
    a = run_sweep(cfg, out=base / "a").run_dir
    b = run_sweep(config_from_text(TINY, overrides=["grid.seed=[0, 1]", "training.learning_rate=0.003"]),
                  out=base / "b").run_dir
    return a, b


def copy_run(src, tmp_path):
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


def records(run_dir):
    return pd.DataFrame([json.loads(p.read_text()) for p in sorted(run_dir.glob("trials/*/trial.json"))])


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


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
    run_dir = copy_run(runs[0], tmp_path)
    result = runner.invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "he_normal" in result.output and "mean ± std over 2 seeds" in result.output
    report = run_dir / "report"
    assert {p.name for p in report.iterdir()} == {
        "report.md", "report.html", "leaderboard.csv", "pivot.csv", "heatmap.png", "learning_curves.png",
        "diagnostics.png",
    }
    assert len(pd.read_csv(report / "leaderboard.csv")) == 8
    assert len(pd.read_csv(report / "pivot.csv")) == 4
    for name, min_w, min_h in [("heatmap.png", 400, 200), ("learning_curves.png", 800, 400),
                               ("diagnostics.png", 1200, 300)]:
        data = (report / name).read_bytes()
        w, h = png_size(data)
        assert w >= min_w and h >= min_h and len(data) > 10_000, name
    html_text = (report / "report.html").read_text()
    assert html_text.count("data:image/png;base64,") == 3 and "http" not in html_text.replace("https://", "")
    assert "Leaderboard" in (report / "report.md").read_text()


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
    run_dir = copy_run(runs[0], tmp_path)
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
    assert "<script>" not in html_text and "&lt;script&gt;alert(1)&lt;/script&gt;" in html_text
    assert "<script>" not in md and "&lt;script&gt;" in md and "\\*bold\\*" in md and "\\[x\\]\\(y\\)" in md


def test_partial_run_reports_what_is_finished_and_says_what_is_missing(runs, tmp_path):
    run_dir = copy_run(runs[0], tmp_path)
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


def test_report_never_imports_tensorflow(runs, tmp_path):
    run_dir = copy_run(runs[0], tmp_path)
    code = (
        "import sys; from typer.testing import CliRunner; from init_lab.cli import app; "
        f"r = CliRunner().invoke(app, ['report', {str(run_dir)!r}]); assert r.exit_code == 0, r.output; "
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; assert not bad, bad; print('clean')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and "clean" in out.stdout, out.stderr


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
    assert [e.step for e in acc.Scalars("epoch/loss")] == [1, 2]


def test_tensorboard_missing_is_a_clear_message(runs, tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("tensorboard"):
            raise ImportError("no tensorboard")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    result = runner.invoke(app, ["report", str(runs[0]), "--tensorboard", str(tmp_path / "tb"), "--no-files"])
    assert result.exit_code == 1 and "pip install 'initlab[tensorboard]'" in result.stderr
