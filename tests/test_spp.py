"""Signal-propagation-plot quantities (issue 21 d; Brock, De & Smith 2021): per layer of layers.csv and the probe,
the average channel squared mean and variance of the layer's output h, and at each residual block's end the branch's
variance; the packed MLP and the Keras models measure the same; SkipInit's branches are exactly 0 at init."""

from __future__ import annotations

import numpy as np
import pytest

from init_lab.analysis.diagnostics import signal_propagation
from init_lab.config.loading import config_from_text
from init_lab.run.sweep import run_sweep

from .helpers import read_csv
from .test_branch_inits import DEEP
from .test_configurable_cnn import CNN


def test_the_quantities_are_per_channel_averages():
    rng = np.random.default_rng(0)
    h = rng.standard_normal((50, 4, 4, 3)) * np.array([1.0, 2.0, 3.0]) + np.array([0.0, 1.0, -2.0])
    out = signal_propagation(h, branch=h * 0.5)
    flat = h.reshape(-1, 3)
    assert out["channel_sq_mean"] == pytest.approx(np.mean(flat.mean(axis=0) ** 2))
    assert out["channel_var"] == pytest.approx(np.mean(flat.var(axis=0)))
    assert out["branch_var"] == pytest.approx(0.25 * out["channel_var"])
    assert out["channel_var"] == pytest.approx((1 + 4 + 9) / 3, rel=0.05)
    assert np.isnan(signal_propagation(h)["branch_var"])


def _layers(run) -> dict[str, list[dict[str, str]]]:
    return {d.name: read_csv(d / "layers.csv") for d in sorted((run.run_dir / "trials").iterdir())}


def test_residual_mlp_layers_carry_them_alike_in_both_classes(tmp_path):
    cfg = config_from_text(DEEP, overrides=["model.residual=true", "grid.initializer=[he_normal, skipinit]",
                                            "grid.activation=[relu]", "training.epochs=1"])
    packed, single = run_sweep(cfg, out=tmp_path / "p"), run_sweep(cfg, out=tmp_path / "k", pack=False)
    lp, lk = _layers(packed), _layers(single)
    for trial in lp:
        for rp, rk in zip(lp[trial], lk[trial], strict=True):
            for key in ("channel_sq_mean", "channel_var", "branch_var", "pre_std"):
                if rp[key] == "nan":  # written as nan where the layer ends no block
                    assert rk[key] == "nan", (trial, key)
                else:
                    assert float(rp[key]) == pytest.approx(float(rk[key]), rel=1e-3, abs=1e-7), (trial, rp["layer"], key)
    he, skip = (lp[t] for t in sorted(lp))
    init_he = [r for r in he if r["epoch"] == "0"]
    ends = [r for r in init_he if r["branch_var"] != "nan"]
    assert [r["layer"] for r in ends] == ["2", "4", "6"]  # the three blocks' last layers
    # He normal + ReLU: every block doubles the stream's second moment (the residual length map), so its variance grows
    assert all(float(b["channel_var"]) > 1.5 * float(a["channel_var"]) for a, b in zip(ends, ends[1:]))
    init_skip = [r for r in skip if r["epoch"] == "0" and r["branch_var"] != "nan"]
    assert [float(r["branch_var"]) for r in init_skip] == [0.0, 0.0, 0.0]  # α = 0: the branches add nothing
    assert len({r["channel_var"] for r in init_skip}) == 1  # ... so every block passes the same stream on


def test_batchnorm_and_cnn_layers_measure_h_before_normalization(tmp_path):
    bn = run_sweep(config_from_text(DEEP, overrides=["model.residual=true", "model.normalization=batchnorm",
                                                     "grid.activation=[relu]", "training.epochs=1"]), out=tmp_path / "bn")
    rows = [r for r in next(iter(_layers(bn).values())) if r["epoch"] == "0"]
    assert all(float(r["pre_std"]) == pytest.approx(1.0, abs=0.01) for r in rows)  # BN's output: batch statistics
    assert float(rows[-1]["channel_var"]) > 2 * float(rows[0]["channel_var"])  # while the stream grows
    cnn = run_sweep(config_from_text(CNN, overrides=["model.residual=true", "model.pool_every=[1]",
                                                     "grid.activation=[relu]", "training.epochs=1"]), out=tmp_path / "cnn")
    rows = [r for r in next(iter(_layers(cnn).values())) if r["epoch"] == "0"]
    assert [r["branch_var"] != "nan" for r in rows] == [False, False, True] and float(rows[2]["branch_var"]) > 0


def test_the_report_and_the_probe_draw_the_plot(tmp_path, write_config):
    from .helpers import assert_clean_exit, invoke

    cfg = write_config(DEEP)
    sets = ["--set", "model.residual=true", "--set", "grid.initializer=[he_normal, skipinit]", "--set",
            "grid.activation=[relu]", "--set", "training.epochs=1"]
    assert_clean_exit(invoke("sweep", cfg, "--out", tmp_path / "runs", *sets), 0)
    assert_clean_exit(invoke("report", tmp_path / "runs" / "latest"), 0)
    report = tmp_path / "runs" / "latest" / "report"
    assert (report / "signal_propagation.png").stat().st_size > 10_000
    assert "signal_propagation.png" in (report / "report.md").read_text()
    probe = invoke("probe", cfg, "--out", tmp_path / "probes", *sets[:-2], "--seeds", "2")
    assert_clean_exit(probe, 0)
    (spp,) = (tmp_path / "probes").glob("*/probe_spp.png")
    assert spp.stat().st_size > 10_000
    plain = invoke("sweep", write_config(DEEP, "plain.yaml"), "--out", tmp_path / "plain", "--set", "training.epochs=1")
    assert_clean_exit(plain, 0)
    assert_clean_exit(invoke("report", tmp_path / "plain" / "latest"), 0)
    assert not (tmp_path / "plain" / "latest" / "report" / "signal_propagation.png").exists()  # plain MLPs: none


def test_the_figure_draws_a_point_per_block():
    """A residual trial: its first layer and each block's output (the rows with branch_var); a plain one: every layer."""
    import pandas as pd

    from init_lab.report.spp import _per_block

    nan = float("nan")
    frame = pd.DataFrame({
        "trial_id": ["res"] * 5 + ["plain"] * 3,
        "layer": [0, 1, 2, 3, 4, 0, 1, 2],
        "branch_var": [nan, nan, 0.5, nan, 0.7, nan, nan, nan],  # blocks of 2 end at layers 2 and 4
        "channel_var": [1.0] * 8,
    })
    kept = _per_block(frame)
    assert kept[kept["trial_id"] == "res"]["layer"].tolist() == [0, 2, 4]
    assert kept[kept["trial_id"] == "plain"]["layer"].tolist() == [0, 1, 2]
