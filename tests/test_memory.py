"""Memory-aware groups: the estimate (``memory``), the budget (``capacity``), groups cut to fit it (``plan``),
out-of-memory retries — no number changes."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from init_lab.catalog import defaults
from init_lab.catalog.errors import ConfigError, RunDirError
from init_lab.catalog.models import Architecture, NetKind
from init_lab.cli import app
from init_lab.config.grid import expand
from init_lab.config.loading import config_from_text
from init_lab.config.schema import parse_memory
from init_lab.engine.events import Group, TrialState
from init_lab.run import capacity, memory
from init_lab.run.memory import DataShape, MemoryPlan, estimate_group_bytes, layer_sizes
from init_lab.run.plan import plan_groups, split_to_budget
from init_lab.run.retry import is_out_of_memory
from init_lab.run.sweep import check_resume_change, resume_sweep, run_sweep

from .helpers import TINY, EventLog, assert_clean_exit, copy_run, invoke, read_csv, run_tables

EIGHT = TINY.replace("activation: [relu, tanh]", "activation: [relu, tanh]\n  seed: [0, 1]")  # one packed group of 8
MNIST = DataShape((784,), 10, 54_000, 6_000, 10_000)


def specs_of(text: str = EIGHT, *overrides: str):
    return expand(config_from_text(text, overrides=list(overrides)))


def plan_for(budget: int, text: str = EIGHT) -> MemoryPlan:
    cfg = config_from_text(text)
    return MemoryPlan(budget, DataShape.from_config(cfg, "mlp"), cfg.training.diagnostics, "test")


def fitting(n: int, text: str = EIGHT) -> int:
    """A budget that fits groups of n trials of ``text`` and no more."""
    plan = plan_for(0, text)
    return plan.fixed_bytes + estimate_group_bytes(specs_of(text)[:n], plan.data)


# this machine's own probes, captured before conftest's hermetic fixture fixes them for every test
REAL_HOST_AVAILABLE, REAL_GPU_FREE = capacity.host_available_bytes, capacity.gpu_free_bytes


# --- the estimate ----------------------------------------------------------------------------------


def test_the_estimate_grows_with_trials_width_batch_and_diagnostics():
    specs = specs_of()
    grows = [estimate_group_bytes(specs[:t], MNIST) for t in (2, 4, 8)]
    assert grows[0] < grows[1] < grows[2]
    assert grows[2] - grows[1] == 2 * (grows[1] - grows[0])  # linear in T: each trial adds the same
    wide = specs_of(EIGHT, "model.hidden=[64, 64]")
    assert estimate_group_bytes(wide[:4], MNIST) > grows[1]
    big_batch = specs_of(EIGHT, "training.batch_size=200")
    assert estimate_group_bytes(big_batch[:4], MNIST) > grows[1]
    assert estimate_group_bytes(specs[:4], MNIST, diagnostics=False) < grows[1]
    sgd = specs_of(EIGHT, "training.optimizer=sgd")  # no slots: less than Adam's two
    assert estimate_group_bytes(sgd[:4], MNIST) < grows[1]
    # a lone packed trial trains beside a ghost copy under XLA
    assert (estimate_group_bytes(specs[:1], MNIST) == estimate_group_bytes(specs[:2], MNIST)) == defaults.XLA
    assert estimate_group_bytes(specs[:1], MNIST, net=NetKind.KERAS) < estimate_group_bytes(specs[:2], MNIST)


@pytest.mark.parametrize("model, most", [
    ("model: {kind: glorot2010}", 4),  # 4.8M parameters a trial: its state dominates
    ("model: {kind: deep_mlp}", 6),
    ("model: {kind: mlp, hidden: [256, 256]}", 12),  # 0.27M: the evaluation and probe batches weigh as much
])
@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
def test_the_estimate_is_a_few_times_the_parameters_and_optimizer_state(model, most, optimizer):
    text = EIGHT.replace("model: {kind: mlp, hidden: [16, 16]}", model).replace("optimizer: adam", f"optimizer: {optimizer}")
    specs = specs_of(text, "training.batch_size=128")
    params = layer_sizes(specs[0].arch, MNIST.input_shape, MNIST.n_classes).params
    state = params * 4 * (2 + {"adam": 2, "sgd": 0, "rmsprop": 1}[optimizer]) * len(specs)  # weights, gradients, slots
    assert 2 * state < estimate_group_bytes(specs, MNIST) < most * state  # + a snapshot, batches, passes over data


def test_cnn_and_mlp_parameter_counts_match_the_networks():
    from init_lab.engine.nets import build_keras_model

    spec = specs_of()[0]
    cnn = build_keras_model(Architecture("mnist_cnn", "cnn"), (28, 28, 1), 10, spec.initializer, spec.activation, 0)
    # 26×26×32 + 13×13×32 + 11×11×64 + 5×5×64 + 3×3×64 outputs (convolutions, pooling), dense 64, logits 10
    assert layer_sizes(Architecture("mnist_cnn", "cnn"), (28, 28, 1), 10) == (cnn.count_params(), 37_034, 21_632)
    mlp = build_keras_model(spec.arch, (784,), 10, spec.initializer, spec.activation, 0)
    assert layer_sizes(spec.arch, (784,), 10) == (mlp.count_params(), 16 + 16 + 10, 16)


def test_data_shape_from_the_config():
    cfg = config_from_text(TINY)
    assert DataShape.from_config(cfg, "mlp") == DataShape((784,), 10, 480, 120, 200)
    full = config_from_text(TINY, overrides=["dataset.name=mnist", "dataset.validation_split=0.1", "dataset.test_size=500"])
    assert DataShape.from_config(full, "cnn") == DataShape((28, 28, 1), 10, 54_000, 6_000, 500)
    assert memory.estimate_data_bytes(DataShape.from_config(full, "mlp")) > 4 * 60_500 * 784


# --- the budget ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("auto", None), ("AUTO", None), (None, None), (2_000_000, 2_000_000), (2e9, 2_000_000_000),
    ("2GB", 2 * 10**9), ("512MiB", 512 * 2**20), ("1.5 gib", 3 * 2**29), ("2e9", 2 * 10**9), ("100", 100),
    (".5TB", 5 * 10**11), ("64kb", 64_000),
])
def test_budget_sizes_parse(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("text, message", [
    ("2 GBs", "Did you mean 'GB'?"), ("2GiG", "Did you mean 'GiB'?"), ("atuo", "Did you mean 'auto'?"),
    ("lots", "a size such as 2GB"), ("-1GB", "a size such as 2GB"), (0, "at least 1 byte"), (True, "got True"),
    ("nan", "a size such as 2GB"), ([1], "got [1]"), ("1e999", "at least 1 byte"),
])
def test_bad_budgets_are_clear_errors(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_memory(text)


def test_a_bad_budget_in_a_config_names_the_field_and_its_line():
    with pytest.raises(ConfigError) as info:
        config_from_text(TINY + "resources:\n  memory: 2 gigs\n")
    assert "<config>:11: resources.memory: unknown size unit 'gigs'" in str(info.value)
    assert "Allowed: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB" in str(info.value)
    with pytest.raises(ConfigError, match=r"--set resources\.memory: resources\.memory: .*Did you mean 'auto'\?"):
        config_from_text(TINY, overrides=["resources.memory=atuo"])
    assert config_from_text(TINY, overrides=["resources.memory=2GB"]).resolved()["resources"]["memory"] == "2GB"
    with pytest.raises(ConfigError, match="resources.memory: .*got 'x'"):
        capacity.budget_and_source("cpu", "x")  # the API's own check names the option too


def test_changing_the_budget_on_resume_is_allowed(tmp_path, reference_run):
    saved = config_from_text(TINY)
    check_resume_change(tmp_path, saved, config_from_text(TINY, overrides=["resources.memory=1GB"]))  # no error
    with pytest.raises(RunDirError, match="training.learning_rate"):  # while a change of what trials compute is
        check_resume_change(tmp_path, saved, config_from_text(TINY, overrides=["training.learning_rate=0.5"]))
    run = copy_run(reference_run(), tmp_path / "run")
    resumed = resume_sweep(run, overrides=["resources.memory=1GB"])
    assert resumed.count("completed") == 4 and len(resumed.skipped) == 4  # nothing retrained
    assert "memory: 1GB" in (run / "config.yaml").read_text()


def test_auto_budget_on_cpu_is_a_share_of_available_ram(monkeypatch):
    monkeypatch.setattr(capacity, "host_available_bytes", REAL_HOST_AVAILABLE)
    budget, source = capacity.budget_and_source("cpu (2 cores)", "auto")
    assert 0 < budget <= capacity.host_available_bytes() and "host RAM" in source
    assert capacity.budget_and_source("cpu", "3GiB") == (3 * 2**30, "resources.memory")
    monkeypatch.setattr(capacity, "_meminfo", lambda field: None)  # no /proc/meminfo: the physical total
    assert capacity.host_available_bytes() > 0


def test_auto_budget_on_gpu_from_nvidia_smi_or_the_fallback(monkeypatch, tmp_path):
    monkeypatch.setattr(capacity, "gpu_free_bytes", REAL_GPU_FREE)
    monkeypatch.setattr(capacity.shutil, "which", lambda name: None)
    assert capacity.budget_and_source("gpu (Fake; 1 visible)", "auto") == (
        int(defaults.GPU_MEMORY_FALLBACK * defaults.MEMORY_FRACTION),
        "auto: 50% of 8.59 GB (nvidia-smi cannot tell the GPU's)")
    assert "host RAM" in capacity.budget_and_source("auto", "auto")[1]  # a dry run without a GPU: host RAM
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 1000\n")
    smi.chmod(0o755)
    monkeypatch.setattr(capacity.shutil, "which", lambda name: str(smi))
    held = capacity._tensorflow_gpu_bytes_in_use()  # 0 here: TensorFlow holds nothing on a GPU
    assert capacity.budget_and_source("gpu", "auto") == (int((1000 * 2**20 + held) * 0.5), "auto: 50% of free GPU memory")
    assert capacity.budget_and_source("auto", "auto")[1] == "auto: 50% of free GPU memory"


# --- cutting groups to fit --------------------------------------------------------------------------


def test_a_tiny_budget_cuts_a_group_into_the_fewest_equal_chunks():
    specs = specs_of()
    (whole,), _ = plan_groups(specs)
    assert len(whole.specs) == 8
    groups, notices = plan_groups(specs, memory=plan_for(fitting(3)))
    assert [len(g.specs) for g in groups] == [3, 3, 2] and not notices  # fewest chunks (3), sizes differ by ≤ 1
    assert [g.id for g in groups] == [f"{whole.id}-m{i}" for i in (1, 2, 3)]
    assert [s for g in groups for s in g.specs] == whole.specs  # order kept
    assert plan_groups(specs, memory=plan_for(fitting(8)))[0] == [whole]
    four, _ = plan_groups(specs, memory=plan_for(fitting(4)))
    assert [len(g.specs) for g in four] == [4, 4]


def test_chunks_keep_their_members_saved_states():
    specs = specs_of()
    start = {s.id: TrialState(s.id, NetKind.PACKED_MLP, epoch=1) for s in specs}
    group = Group("g", NetKind.PACKED_MLP, specs, start)
    plan = plan_for(fitting(4))
    halves = split_to_budget([group], plan.group_budget, plan.group_bytes)
    assert [g.start_epoch for g in halves] == [1, 1]
    assert [list(g.start) for g in halves] == [[s.id for s in specs[:4]], [s.id for s in specs[4:]]]


def test_a_trial_too_large_alone_still_runs_and_is_flagged():
    groups, notices = plan_groups(specs_of(), memory=plan_for(1000))
    assert [len(g.specs) for g in groups] == [1] * 8
    assert len(notices) == 1 and "8 trials (first 000_he_normal-relu-s0)" in notices[0]
    assert "running anyway" in notices[0] and "resources.memory" in notices[0]


# --- real sweeps: split, or out of memory, the numbers stay -------------------------------------------


@pytest.fixture
def baseline(xla, reference_run):
    """The group of 8 trained whole, with XLA: the step whose numbers do not depend on the group (without XLA,
    TensorFlow's kernels round an activation over a slice of 1 trial and of 2 differently: see README, XLA)."""
    run = reference_run(EIGHT)
    assert [r["packed_with"] for r in read_csv(run / "summary.csv")] == ["8"] * 8
    return run_tables(run)


@pytest.mark.slow
def test_a_sweep_split_to_its_budget_computes_the_same_numbers(tmp_path, baseline):
    cfg = config_from_text(EIGHT, overrides=[f"resources.memory={fitting(3)}"])
    result = run_sweep(cfg, out=tmp_path)
    assert result.count("completed") == 8
    assert [r.packed_with for r in result.records] == [3, 3, 3, 3, 3, 3, 2, 2]
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["execution"]["groups"] == [3, 3, 2]
    assert manifest["execution"]["memory"]["budget_bytes"] == fitting(3)
    assert max(manifest["execution"]["memory"]["group_bytes"]) <= fitting(3) - manifest["execution"]["memory"]["fixed_bytes"]
    assert run_tables(result.run_dir) == baseline


@pytest.mark.slow
@pytest.mark.parametrize("fault, retries, size", [
    ("1", 7, 1),  # 8 → 4 + 4 → 2 + 2 + 2 + 2 → eight single trials, each attempt from scratch
    ("2:2", 3, 2),  # 8 → 4 + 4 → 2 + 2 + 2 + 2, halfway through epoch 2, each from its state after epoch 1
])
def test_out_of_memory_splits_and_retries_with_the_same_numbers(tmp_path, monkeypatch, baseline, fault, retries, size):
    mid_epoch = ":" in fault
    cfg = config_from_text(EIGHT, overrides=["training.step_diagnostics_epochs=2"] if mid_epoch else [])
    normal = run_tables(run_sweep(cfg, out=tmp_path / "normal").run_dir) if mid_epoch else baseline
    monkeypatch.setenv("INITLAB_FAULT_OOM_ABOVE", fault)
    observer = EventLog()
    result = run_sweep(cfg, out=tmp_path / "oom", observer=observer)
    assert result.count("completed") == 8
    assert [r.packed_with for r in result.records] == [size] * 8
    oom = [line for line in observer.notices if "ran out of memory (MemoryError: injected" in line]
    assert len(oom) == retries and "in groups of 4 and 4" in oom[0]
    assert all(("from their states after epoch 1" if mid_epoch else "from epoch 1") in line for line in oom)
    assert run_tables(result.run_dir) == normal


@pytest.mark.slow
def test_a_single_trial_out_of_memory_fails_with_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("INITLAB_FAULT_OOM_ABOVE", "0")
    result = run_sweep(config_from_text(TINY), out=tmp_path)
    assert [r.status for r in result.records] == ["failed"] * 4  # and the sweep went on to the end
    assert all(r.error.startswith("MemoryError: injected: a group of 1 trials") for r in result.records)
    assert all("out of memory with this trial alone" in r.error for r in result.records)


def test_out_of_memory_is_recognised_without_importing_tensorflow():
    def tf_error(name: str) -> type:
        return type(name, (Exception,), {"__module__": "tensorflow.python.framework.errors_impl"})

    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(tf_error("ResourceExhaustedError")("OOM when allocating tensor"))
    assert is_out_of_memory(tf_error("InternalError")("RESOURCE_EXHAUSTED: Out of memory while trying to allocate"))
    assert not is_out_of_memory(tf_error("InvalidArgumentError")("Incompatible shapes"))
    assert not is_out_of_memory(ValueError("RESOURCE_EXHAUSTED"))  # only TensorFlow's errors are read for it


def test_tensorflows_own_out_of_memory_error_is_recognised():
    from init_lab.engine.backend import tf

    assert is_out_of_memory(tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor"))


# --- the command line -----------------------------------------------------------------------------


def test_dry_run_shows_groups_their_estimates_and_the_budget(write_config):
    runner = CliRunner()
    path = write_config(EIGHT)
    result = runner.invoke(app, ["sweep", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "1 execution group(s)" in result.output and "est. memory" in result.output
    assert "0–7" in result.output and "memory budget" in result.output and "of available host RAM" in result.output
    result = runner.invoke(app, ["sweep", str(path), "--dry-run", "--set", f"resources.memory={fitting(3)}"])
    assert result.exit_code == 0, result.output
    assert "3 execution group(s)" in result.output and "-m3" in result.output and "(resources.memory)" in result.output
    assert "0–2" in result.output and "6–7" in result.output and "the memory budget cut 1 group(s) of 8" in result.output
    estimate = capacity.format_bytes(estimate_group_bytes(specs_of()[:3], plan_for(0).data))
    assert estimate in result.output
    result = runner.invoke(app, ["sweep", str(path), "--dry-run", "--set", "resources.memory=1KB"])
    assert result.exit_code == 0, result.output
    assert "over budget" in result.output and "note:" in result.output and "running anyway" in result.output


def test_a_bad_budget_on_the_command_line_is_a_clean_error(write_config):
    result = invoke("sweep", write_config(EIGHT), "--dry-run", "--set", "resources.memory=2 gigs")
    assert_clean_exit(result, 1)
    assert "resources.memory: unknown size unit 'gigs'" in result.stderr


def test_the_budget_helper_fits_exactly_its_group_size():
    plan, specs = plan_for(fitting(3)), specs_of()
    assert plan.fits(Group("a", NetKind.PACKED_MLP, specs[:3])) and not plan.fits(Group("b", NetKind.PACKED_MLP, specs[:4]))
