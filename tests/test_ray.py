"""--executor ray on a real local Ray instance: same results as local; a killed worker is retried."""

from __future__ import annotations

import csv
import json

import pytest

ray = pytest.importorskip("ray")

from init_lab.config.schema import config_from_text  # noqa: E402
from init_lab.run.sweep import run_sweep  # noqa: E402

from .conftest import TINY  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def tables(run_dir):
    out = {}
    for d in sorted((run_dir / "trials").iterdir()):
        for name in ("epochs.csv", "layers.csv"):
            with open(d / name, newline="") as f:
                out[f"{d.name}/{name}"] = [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]
    return out


def test_ray_gives_the_same_run_directory_as_local(local_ray, tmp_path):
    cfg = config_from_text(TINY, overrides=["grid.activation=[relu, tanh, prelu]"])  # a packed group + singles
    local = run_sweep(cfg, out=tmp_path / "local")
    remote = run_sweep(cfg, out=tmp_path / "ray", executor="ray")
    assert remote.count("completed") == local.count("completed") == 6
    assert tables(remote.run_dir) == tables(local.run_dir)
    manifest = json.loads((remote.run_dir / "manifest.json").read_text())
    assert manifest["execution"]["executor"] == "ray" and manifest["status"] == "completed"


def test_a_killed_worker_is_retried_and_every_trial_lands_once(local_ray, tmp_path, monkeypatch):
    marker = tmp_path / "crashed-once"
    # the worker processes inherit the driver's environment when they start: set it for the job
    ray.shutdown()
    monkeypatch.setenv("INITLAB_FAULT_CRASH_ONCE", str(marker))
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"INITLAB_FAULT_CRASH_ONCE": str(marker)}})
    result = run_sweep(config_from_text(TINY), out=tmp_path / "runs", executor="ray", pack=False)
    assert marker.exists(), "a worker was killed"
    assert result.count("completed") == 4
    with open(result.run_dir / "summary.csv", newline="") as f:
        ids = [r["trial_id"] for r in csv.DictReader(f)]
    assert len(ids) == len(set(ids)) == 4


def test_missing_ray_is_a_clear_message(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_ray(name, *a, **k):
        if name == "ray":
            raise ImportError("no ray")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    from init_lab.catalog.errors import InitLabError

    with pytest.raises(InitLabError, match=r"pip install 'initlab\[ray\]'"):
        run_sweep(config_from_text(TINY), out=tmp_path / "runs", executor="ray")
    assert not (tmp_path / "runs").exists(), "nothing is written before the executor is known to work"


class Log:
    """An observer that keeps the order of what it was told."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *a, **k: None

    def group_start(self, specs, position, total, start_epoch=0):
        self.calls.append(("start", specs[0].id, start_epoch))

    def epoch_end(self, spec, row):
        self.calls.append(("epoch", spec.id, row["epoch"]))

    def trial_end(self, spec, record):
        self.calls.append(("end", spec.id, record["status"]))


def test_per_epoch_events_reach_the_driver(local_ray, tmp_path):
    log = Log()
    result = run_sweep(config_from_text(TINY), out=tmp_path / "runs", executor="ray", observer=log)
    assert result.count("completed") == 4
    for trial in (r["trial_id"] for r in result.records):
        mine = [c for c in log.calls if c[1] == trial and c[0] != "start"]
        assert [c[0] for c in mine] == ["epoch", "epoch", "end"], mine  # epochs arrive before the trial ends


def test_a_killed_worker_resumes_its_group_from_the_checkpoint(tmp_path, monkeypatch):
    marker = tmp_path / "crashed-after-epoch-1"
    ray.shutdown()
    env = {"INITLAB_FAULT_CRASH_AFTER_EPOCH": f"1:{marker}"}
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    try:
        cfg = config_from_text(TINY.replace("epochs: 2", "epochs: 3"))
        log = Log()
        remote = run_sweep(cfg, out=tmp_path / "ray", executor="ray", observer=log)
    finally:
        ray.shutdown()
    assert marker.exists(), "the worker was killed after its epoch-1 checkpoint"
    starts = [c[2] for c in log.calls if c[0] == "start"]
    assert starts == [0, 1], "the retried task continued after epoch 1"
    local = run_sweep(cfg, out=tmp_path / "local")
    assert tables(remote.run_dir) == tables(local.run_dir)


def test_an_unreachable_address_fails_fast_naming_it(tmp_path, write_config):
    from typer.testing import CliRunner

    from init_lab.cli import app

    result = CliRunner().invoke(app, ["sweep", str(write_config()), "--out", str(tmp_path / "runs"),
                                      "--executor", "ray", "--address", "127.0.0.1:1"])
    assert result.exit_code == 1 and "127.0.0.1:1" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()
