"""Where trials run: in this process (``local``) or as Ray tasks on a cluster (``ray``).

With Ray, each execution group (a packed group, or one trial) is one task with the config's
``resources`` request. Tasks return their results — per-epoch tables, diagnostics, outcomes — and
the driver alone writes the run directory as each task finishes, so progress, summaries and resume
work as for local sweeps. Workers load the dataset once per worker process. A task whose worker
dies is retried by Ray (``max_retries``); an ordinary exception inside a trial is returned as a
failed outcome, never retried.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from .errors import InitLabError

_DATA_CACHE: dict[str, Any] = {}  # per worker process: dataset config → DeviceData


def _worker_data(config: Any) -> Any:
    from . import train
    from .datasets import load_dataset, prepare
    from .grid import expand

    key = config.dataset.model_dump_json() + str(config.training.diagnostics)
    if key not in _DATA_CACHE:
        ds = config.dataset
        raw = load_dataset(ds.name, ds.path, (ds.synthetic_train, ds.synthetic_test))
        family = expand(config)[0].arch.family
        prepared = prepare(raw, family, ds.validation_split, ds.split_seed, ds.train_size, ds.test_size)
        _DATA_CACHE.clear()
        _DATA_CACHE[key] = train.DeviceData.from_prepared(prepared, diagnostics=config.training.diagnostics)
    return _DATA_CACHE[key]


def run_group_task(config_text: str, trial_ids: list[str], device: str) -> dict[str, Any]:
    """Body of a Ray task: train one execution group, return {trial_id: TrialOutcome}."""
    from . import train
    from .config import config_from_text
    from .grid import expand
    from .packed import train_group
    from .train import TrialOutcome

    crash_marker = os.environ.get("INITLAB_FAULT_CRASH_ONCE")  # fault injection for tests: kill this worker once
    if crash_marker and not os.path.exists(crash_marker):
        open(crash_marker, "w").close()
        os._exit(1)
    config = config_from_text(config_text)
    train.setup_device(device, config.training.deterministic)
    specs = [s for s in expand(config) if s.id in set(trial_ids)]
    data = _worker_data(config)
    if len(specs) > 1:
        try:
            return train_group(specs, data)
        except Exception:  # noqa: BLE001 - like the local executor: fall back to one model per trial
            pass
    out = {}
    for spec in specs:
        try:
            out[spec.id] = train.train_trial(spec, data)
        except Exception as exc:  # noqa: BLE001 - a trial's own failure is a result, not a retry
            out[spec.id] = TrialOutcome(status="failed", error=f"{type(exc).__name__}: {exc}")
    return out


class RayExecutor:
    """Submits groups as Ray tasks and yields results as they finish."""

    def __init__(self, address: str | None, cpus: float, gpus: float, max_retries: int = 3):
        try:
            import ray
        except ImportError:
            raise InitLabError("--executor ray needs Ray: pip install 'initlab[ray]'.") from None
        self.ray = ray
        self.started_here = not ray.is_initialized()
        if self.started_here:
            try:
                if address:
                    ray.init(address=address, log_to_driver=False)
                else:
                    ray.init(address="local", include_dashboard=False, log_to_driver=False)
            except Exception as exc:  # noqa: BLE001 - connection problems come in many types
                where = f"the Ray cluster at {address}" if address else "a local Ray instance"
                raise InitLabError(f"cannot start or reach {where}: {exc}") from None
        self.remote = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=max_retries, retry_exceptions=False)(
            run_group_task
        )

    def run(self, config_text: str, groups: list[list[Any]], device: str) -> Iterator[tuple[list[Any], dict]]:
        pending = {self.remote.remote(config_text, [s.id for s in g], device): g for g in groups}
        while pending:
            done, _ = self.ray.wait(list(pending), num_returns=1)
            for ref in done:
                group = pending.pop(ref)
                try:
                    result = self.ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - retries exhausted: every trial of the group failed
                    from .train import TrialOutcome

                    result = {s.id: TrialOutcome(status="failed", error=f"Ray task failed: {exc}") for s in group}
                yield group, result

    def close(self) -> None:
        if self.started_here:
            self.ray.shutdown()
