"""--executor ray on one local Ray instance, started once for this module: the same run directory as local,
per-epoch events reaching the driver, shared checkpoint storage and its notice, the resources a task asks
for, and the address checks. Faults (killed workers, retries running out), where the executor starts and
stops Ray itself, are in test_ray_faults.py."""

from __future__ import annotations

import json

import pytest

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow  # a local Ray instance: seconds to start, and Ray is an optional extra

from init_lab.catalog.errors import InitLabError  # noqa: E402
from init_lab.config.loading import config_from_text, config_to_yaml  # noqa: E402
from init_lab.run.ray_executor import RayExecutor, check_ray_address  # noqa: E402
from init_lab.run.sweep import run_sweep  # noqa: E402

from .helpers import TINY, EventLog, assert_clean_exit, block_imports, invoke, run_tables  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the whole module; no test here stops or replaces it."""
    assert not ray.is_initialized(), "another module left Ray running"
    context = ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield context
    ray.shutdown()


@pytest.fixture
def ray_still_up(local_ray):
    """A test of the module's instance, checked to leave it running (the executor did not start its own)."""
    yield local_ray
    assert ray.is_initialized(), "the executor stopped a Ray instance it did not start"


def test_ray_gives_the_same_run_directory_as_local(ray_still_up, reference_run, tmp_path):
    overrides = ["grid.activation=[relu, tanh, prelu]"]  # a packed group + singles
    local = reference_run(TINY, overrides)
    remote = run_sweep(config_from_text(TINY, overrides=overrides), out=tmp_path / "ray", executor="ray")
    assert remote.count("completed") == 6
    assert run_tables(remote.run_dir) == run_tables(local)  # epochs, layers, steps, step layers, histograms
    manifest = json.loads((remote.run_dir / "manifest.json").read_text())
    assert manifest["execution"]["executor"] == "ray" and manifest["status"] == "completed"
    assert manifest["execution"]["checkpoints"] == str(remote.run_dir / "checkpoints")  # a local instance shares


def test_per_epoch_events_reach_the_driver(ray_still_up, tmp_path):
    log = EventLog()
    result = run_sweep(config_from_text(TINY), out=tmp_path / "runs", executor="ray", observer=log)
    assert result.count("completed") == 4
    for trial in (r.trial_id for r in result.records):
        mine = [c for c in log.calls if c[1] == trial and c[0] != "start"]
        assert [c[0] for c in mine] == ["epoch", "epoch", "end"], mine  # epochs arrive before the trial ends


def test_a_cluster_address_without_shared_storage_says_a_retry_restarts(ray_still_up, tmp_path):
    """With --address the workers may be other machines: the run directory's checkpoints/ is not theirs."""
    address = ray_still_up.address_info["gcs_address"]
    log = EventLog()
    result = run_sweep(config_from_text(TINY), out=tmp_path / "runs", executor="ray", address=address, observer=log)
    assert result.count("completed") == 4
    assert any("no checkpoint storage shared with the Ray workers" in n for n in log.notices), log.notices
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["execution"]["checkpoints"] is None
    assert not list((result.run_dir / "checkpoints").glob("*.npz"))


def test_checkpoints_storage_is_where_workers_write_checkpoints(ray_still_up, tmp_path):
    address = ray_still_up.address_info["gcs_address"]
    storage = tmp_path / "shared"
    log = EventLog()
    cfg = config_from_text(TINY + f"checkpoints: {{storage: {storage}}}\n")
    result = run_sweep(cfg, out=tmp_path / "runs", executor="ray", address=address, observer=log)
    assert result.count("completed") == 4
    assert not [n for n in log.notices if "no checkpoint storage" in n]
    assert list((storage / result.run_dir.name).glob("*.npz")), "the final group state is in the shared storage"
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["execution"]["checkpoints"] == str(storage.resolve() / result.run_dir.name)


def test_a_task_asks_the_cluster_for_the_configured_resources(ray_still_up):
    cfg = config_from_text(TINY + "resources: {cpus: 2, gpus: 0.5}\n")
    executor = RayExecutor(config_to_yaml(cfg), None, cfg.resources.cpus, cfg.resources.gpus, None)
    options = executor.remote._default_options  # what ray.remote(...) was given for every task of the sweep
    assert options["num_cpus"] == 2 and options["num_gpus"] == 0.5 and options["max_retries"] == 3
    assert executor.device == "gpu" and not executor.started_here  # a GPU share: the task sets up a GPU
    executor.close()
    assert RayExecutor(config_to_yaml(cfg), None, 1.0, 0.0, None).device == "cpu"


@pytest.mark.parametrize("address", [None, "auto", "local"])
def test_addresses_that_need_no_connection_pass(address):
    check_ray_address(address)


@pytest.mark.parametrize("address, message", [
    ("10.0.0.5", "expected HOST:PORT"),
    ("10.0.0.5:port", "expected HOST:PORT"),
    (":6379", "expected HOST:PORT"),
    ("ray://", "expected HOST:PORT"),
    ("127.0.0.1:1", "cannot reach the Ray cluster at 127.0.0.1:1"),
    ("ray://127.0.0.1:1/", "cannot reach the Ray cluster at ray://127.0.0.1:1/"),
])
def test_bad_or_unreachable_addresses_are_named(address, message):
    with pytest.raises(InitLabError, match=message.replace(".", r"\.").replace("/", "/")):
        check_ray_address(address)


def test_an_unreachable_address_fails_fast_naming_it(tmp_path, write_config):
    result = invoke("sweep", write_config(), "--out", tmp_path / "runs", "--executor", "ray", "--address", "127.0.0.1:1")
    assert_clean_exit(result, 1)
    assert "127.0.0.1:1" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_missing_ray_is_a_clear_message(tmp_path, monkeypatch):
    block_imports(monkeypatch, "ray")
    with pytest.raises(InitLabError, match=r"pip install 'initlab\[ray\]'"):
        run_sweep(config_from_text(TINY), out=tmp_path / "runs", executor="ray")
    assert not (tmp_path / "runs").exists(), "nothing is written before the executor is known to work"
