"""What a trial records besides its epochs: epoch 0, steps.csv, step_layers.csv and histograms.npz."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from init_lab.analysis.histograms import HistogramLog, count, gradient_edges, read
from init_lab.catalog import defaults
from init_lab.catalog.errors import ConfigError
from init_lab.catalog.registry import Choice
from init_lab.config.loading import config_from_text, config_to_yaml
from init_lab.run.sweep import run_sweep
from init_lab.runschema.columns import PERCENTILES, STEP_COLUMNS, STEP_LAYER_COLUMNS

from .helpers import TINY, read_csv

# 480 training examples, batch 50: 10 steps per epoch; a steps.csv row every 3 steps → windows of 3, 3, 3, 1
RECORDED = TINY.replace("epochs: 2", "epochs: 3, log_every_steps: 3")
STEPS_PER_EPOCH, WINDOWS = 10, [3, 6, 9, 10]
PROBE = 120  # the probe batch: the first 256 validation examples, of 120


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return run_sweep(config_from_text(RECORDED), out=tmp_path_factory.mktemp("rec")).run_dir


def trial(run, prefix):
    return next((run / "trials").glob(prefix + "*"))


def test_epoch_zero_is_the_initial_weights(run):
    for prefix in ("002", "003"):  # zeros: every logit 0, so the loss is exactly ln 10 before any step
        epochs = read_csv(trial(run, prefix) / "epochs.csv")
        assert [int(r["epoch"]) for r in epochs] == [0, 1, 2, 3]
        assert float(epochs[0]["loss"]) == pytest.approx(math.log(10), rel=2e-5)  # float32 sums
        assert float(epochs[0]["val_loss"]) == pytest.approx(math.log(10), rel=2e-5)  # float32 sums
        assert float(epochs[0]["seconds"]) == 0.0
    he = read_csv(trial(run, "000") / "epochs.csv")
    assert float(he[0]["loss"]) != pytest.approx(math.log(10), abs=1e-3)  # a random init is not at chance exactly
    assert float(he[0]["val_accuracy"]) < float(he[-1]["val_accuracy"])  # and it learns from there


def test_steps_table_rows_every_k_steps_and_consistent_with_the_epochs(run):
    for d in (run / "trials").iterdir():
        steps = read_csv(d / "steps.csv")
        assert list(steps[0]) == STEP_COLUMNS
        expected = [0] + [e * STEPS_PER_EPOCH + w for e in range(3) for w in WINDOWS]
        assert [int(r["step"]) for r in steps] == expected  # monotone, no step missing or twice
        assert [int(r["epoch"]) for r in steps] == [0] + [e for e in (1, 2, 3) for _ in WINDOWS]
        assert [float(r["progress"]) for r in steps] == pytest.approx([s / STEPS_PER_EPOCH for s in expected])
        epochs = read_csv(d / "epochs.csv")
        assert float(steps[0]["loss"]) == float(epochs[0]["loss"])
        for e in (1, 2, 3):  # the windows' example-weighted mean is the epoch's training loss
            rows = [r for r in steps if int(r["epoch"]) == e]
            sizes = np.diff([0] + [w * 50 for w in WINDOWS[:-1]] + [480])
            mean = sum(float(r["loss"]) * n for r, n in zip(rows, sizes)) / 480
            assert mean == pytest.approx(float(epochs[e]["loss"]), rel=1e-5)


def test_step_layer_statistics_cover_the_first_epoch(run):
    d = trial(run, "001")  # he_normal + tanh
    rows = read_csv(d / "step_layers.csv")
    assert list(rows[0]) == STEP_LAYER_COLUMNS
    assert sorted({int(r["step"]) for r in rows}) == [0, *WINDOWS]  # step 0 and the first epoch only
    assert len(rows) == (1 + len(WINDOWS)) * 2  # two hidden layers
    for r in rows:
        p = [float(r[f"p{q}"]) for q in PERCENTILES]
        assert p == sorted(p) and -1 <= p[0] and p[-1] <= 1  # tanh's range
        assert 0 <= float(r["saturated_frac"]) <= 1 and r["dead_frac"] == "nan"
    # step 0 and epoch 0 measure the same weights, steps on the probe batch's first 32 examples of 120
    layers = read_csv(d / "layers.csv")
    for a, b in zip([r for r in rows if r["step"] == "0"], [r for r in layers if r["epoch"] == "0"]):
        assert float(a["act_std"]) == pytest.approx(float(b["act_std"]), rel=0.2)


def test_histograms_count_every_probe_value(run):
    for d in (run / "trials").iterdir():
        h = read(d / "histograms.npz")
        assert list(h["layers"]) == ["dense_0", "dense_1"]
        assert h["epoch"].tolist() == [0, 1, 2, 3] and h["step"].tolist() == [0, *WINDOWS]
        for key in ("epoch_act", "epoch_grad", "step_act"):  # 120 probe examples × 16 units per layer
            totals = h[key].sum(axis=-1) + h[key + "_nonfinite"]
            examples = defaults.STEP_PROBE_SIZE if key == "step_act" else PROBE  # steps: the batch's first 32
            assert (totals == examples * 16).all(), key
        assert h["epoch_act"].shape[-1] == len(h["act_edges"]) + 1
        assert h["epoch_grad"].shape[-1] == len(h["grad_edges"]) + 1
    zeros_relu = read(trial(run, "002") / "histograms.npz")
    assert (zeros_relu["epoch_act"][0, :, 1] == PROBE * 16).all()  # relu(0) = 0: every value in the first bin
    assert zeros_relu["act_edges"][0] == 0.0
    tanh = read(trial(run, "001") / "histograms.npz")
    assert tanh["act_edges"][[0, -1]].tolist() == [-1.0, 1.0]
    assert tanh["epoch_act"][..., [0, -1]].sum() == 0  # nothing outside tanh's range


def test_histogram_bins_by_hand():
    counts, bad = count(np.array([-2.0, -1.0, 0.0, 0.99, 1.0, 3.0, np.nan, np.inf]), np.array([-1.0, 0.0, 1.0]))
    assert counts.tolist() == [1, 1, 3, 1] and bad == 2  # under, [-1, 0), [0, 1] (closed), over
    edges = gradient_edges()
    assert edges[0] < 0 < edges[-1] and np.all(np.diff(edges) > 0)
    counts, _ = count(np.array([0.0, 1e-12, -1e-12, 1e-3, -1e-3]), edges)
    assert counts[len(edges) // 2] == 3  # exact and tiny gradients share the bin around 0
    log = HistogramLog.start(["d0"], Choice("sigmoid"))
    assert log.act_edges[[0, -1]].tolist() == [0.0, 1.0]
    log.add_epoch(0, [np.array([[0.0, 1.0, 0.5]])], [np.zeros((1, 3))])
    again = HistogramLog.from_arrays(log.arrays())
    assert all(np.array_equal(a, b) for a, b in zip(again.arrays().values(), log.arrays().values()))


def test_step_settings(tmp_path):
    off = TINY.replace("epochs: 2", "epochs: 1, step_diagnostics_epochs: 0")
    result = run_sweep(config_from_text(off, overrides=["grid.initializer=[he_normal]", "grid.activation=[relu]"]),
                       out=tmp_path)
    d = next((result.run_dir / "trials").iterdir())
    assert not (d / "step_layers.csv").exists()
    h = read(d / "histograms.npz")
    assert h["step"].size == 0 and h["epoch"].tolist() == [0, 1]
    assert len(read_csv(d / "steps.csv")) == 1 + STEPS_PER_EPOCH  # default: ~50 rows per epoch, so every step here


def test_step_settings_are_validated():
    with pytest.raises(ConfigError, match="log_every_steps"):
        config_from_text(TINY.replace("epochs: 2", "epochs: 2, log_every_steps: 0"))
    with pytest.raises(ConfigError, match="needs diagnostics: true"):
        config_from_text(TINY.replace("epochs: 2", "epochs: 2, diagnostics: false, step_diagnostics_epochs: 2"))
    quiet = config_from_text(TINY.replace("epochs: 2", "epochs: 2, diagnostics: false"))  # the default is no error
    assert quiet.training.step_diagnostics_epochs == 0
    assert config_from_text(config_to_yaml(quiet)) == quiet  # the run's resolved config.yaml reads back


def test_step_percentiles_and_histograms_match_numpy():
    from init_lab.analysis.diagnostics import step_statistics
    from init_lab.analysis.histograms import FINE, activation_edges, coarse, fine_counts

    rng = np.random.default_rng(0)
    pre = rng.normal(0, 2.0, size=(3, 64, 40)).astype(np.float32)
    for name, act in (("tanh", np.tanh(pre)), ("relu", np.maximum(pre, 0))):  # relu: p98 beyond the cap of 4
        edges = activation_edges(Choice(name))
        stats, counts, bad = step_statistics(name, pre, act, edges)
        width = (edges[-1] - edges[0]) / ((len(edges) - 1) * FINE)
        for t in range(3):
            ordered = np.sort(act[t].ravel())
            for q in PERCENTILES:  # within a sub-bin of the order statistics numpy interpolates between
                h = q / 100 * (ordered.size - 1)
                low, high = ordered[int(np.floor(h))], ordered[int(np.ceil(h))]
                assert low - width <= stats[t][f"p{q}"] <= high + width
            assert stats[t]["act_std"] == pytest.approx(act[t].std(), rel=1e-5)
            assert counts[t].tolist() == count(act[t], edges)[0].tolist()  # the same bins as the search
        assert (bad == 0).all()
    fine, _ = fine_counts(np.array([[np.nan, -5.0, 0.0, 1.0]]), np.array([0.0, 0.5, 1.0]))
    assert coarse(fine).tolist() == [[1, 1, 1, 0]]  # under, [0, .5), [.5, 1], over: the NaN counted apart


def test_step_statistics_of_trials_at_once_are_each_trials_alone():
    """Short rows are binned several at once (indices offset per row), unit fractions computed for all trials at
    once, and a row known finite is not checked again: the same numbers as each trial alone, a diverging trial's
    NaN and inf, values on the outer edges and just past them included."""
    from init_lab.analysis.diagnostics import step_statistics
    from init_lab.analysis.histograms import CHUNK, activation_edges, fine_counts

    rng = np.random.default_rng(5)
    for name in ("tanh", "relu", "sigmoid", "selu"):
        edges = activation_edges(Choice(name))
        pre = rng.normal(0, 3.0, size=(9, 16, CHUNK // 64)).astype(np.float32)  # 9 rows of CHUNK / 4 values
        pre[2, 0, :4] = [np.nan, np.inf, -np.inf, 1.0]
        pre[5, 1, :3] = [edges[-1], edges[0], np.nextafter(np.float32(edges[-1]), np.float32(10))]
        pre[7] = -np.abs(pre[7])  # every unit of a trial dead (relu) or negative (selu)
        together = step_statistics(name, pre, pre, edges)
        alone = [step_statistics(name, pre[t: t + 1], pre[t: t + 1], edges) for t in range(len(pre))]
        for t, (stats, counts, bad) in enumerate(alone):
            assert together[0][t] == pytest.approx(stats[0], nan_ok=True, rel=0, abs=0)
            assert together[1][t].tolist() == counts[0].tolist() and together[2][t] == bad[0]
        fine, bad = fine_counts(pre.reshape(9, -1), edges)
        assert bad.tolist() == [0, 0, 3, 0, 0, 0, 0, 0, 0] and (fine.sum(axis=1) == pre[0].size - bad).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_bins_by_table_are_the_binary_searchs(dtype):
    """count_gradients looks bins up by a float's top bits: the same counts as searching the edges, at and beside
    every edge (in float64 and as rounded to float32), and over float bit patterns across the whole range."""
    from init_lab.analysis.histograms import count_gradients, gradient_edges

    edges = gradient_edges()
    rng = np.random.default_rng(3)
    spread = rng.standard_normal(200_000) * 10.0 ** rng.uniform(-13, 6, 200_000)  # beyond both ends too
    rounded = edges.astype(np.float32).astype(np.float64)
    beside = np.concatenate([e for x in (edges, rounded) for e in (x, np.nextafter(x, np.inf), np.nextafter(x, -np.inf))])
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 3.4e38, -3.4e38]
    unsigned = np.uint32 if dtype == np.float32 else np.uint64
    patterns = rng.integers(0, np.iinfo(unsigned).max, 1_000_000, dtype=unsigned, endpoint=True).view(dtype)
    patterns = patterns[np.isfinite(patterns)]  # NaN patterns (signalling ones warn when cast): counted apart above
    for values in (spread, beside, np.array(special), patterns):
        values = values.astype(dtype)
        expected = count(values, edges)
        got = count_gradients(values, edges)
        assert got[0].tolist() == expected[0].tolist() and got[1] == expected[1]


def test_epochs_to_each_threshold_is_the_first_epoch_that_reached_it(run):
    """trial.json's epochs_to_threshold and summary.csv's epochs_to_<t> columns, from epochs.csv by hand."""
    thresholds = defaults.ACCURACY_THRESHOLDS  # the run's own (training.thresholds left out)
    summary = {r["trial_id"]: r for r in read_csv(run / "summary.csv")}
    reached_some = missed_some = False
    for tid, row in summary.items():
        epochs = read_csv(run / "trials" / tid / "epochs.csv")
        record = json.loads((run / "trials" / tid / "trial.json").read_text())
        for t in thresholds:
            first = next((int(e["epoch"]) for e in epochs if float(e["val_accuracy"]) >= t), None)
            assert record["epochs_to_threshold"][f"epochs_to_{t:g}"] == first, (tid, t)
            assert row[f"epochs_to_{t:g}"] == ("" if first is None else str(first)), (tid, t)
            reached_some |= first is not None
            missed_some |= first is None
    assert reached_some and missed_some  # both cases occur in this run


def test_a_table_is_rewritten_only_when_its_rows_changed(tmp_path, monkeypatch):
    """Every epoch end rewrites what grew; step_layers.csv stops growing after the first epoch, so it is written at
    the start (step 0) and after epoch 1 only, and nothing is rewritten at the end; the files hold every row."""
    from collections import Counter

    from init_lab.run.store import RunStore

    writes: Counter = Counter()
    real = RunStore.write_table

    def counting(self, trial_id, name, rows):
        writes[name] += 1
        return real(self, trial_id, name, rows)

    monkeypatch.setattr(RunStore, "write_table", counting)
    run_dir = run_sweep(config_from_text(RECORDED), out=tmp_path).run_dir
    trials = 4
    assert writes["step_layers.csv"] == 2 * trials
    assert writes["steps.csv"] == 4 * trials and writes["epochs.csv"] == 4 * trials  # the start and 3 epoch ends
    for d in (run_dir / "trials").iterdir():
        assert [int(r["epoch"]) for r in read_csv(d / "epochs.csv")] == [0, 1, 2, 3]
        assert read_csv(d / "steps.csv")[-1]["step"] == str(3 * STEPS_PER_EPOCH)
        assert {r["epoch"] for r in read_csv(d / "step_layers.csv")} == {"0", "1"}
