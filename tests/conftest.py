"""What every test shares: settings made at import, before init_lab is imported, and five fixtures. Helpers (the
tiny config, the CLI in and out of process, table readers, run copies, an import blocker, hostile strings, the
recording observer, a planted run directory) are in helpers.py.

At import: XLA off (``INITLAB_XLA=0``), TensorFlow's C++ info and warning logs off unless ``TF_CPP_MIN_LOG_LEVEL``
is set, ``COLUMNS=160``, Hypothesis's deterministic profile (``HYPOTHESIS_PROFILE=explore`` draws new examples).
Fixtures: ``_hermetic`` (autouse: no developer data dir, fault switches or XLA setting, an empty Keras cache, the
same auto memory budget on every machine); ``xla`` (the packed step compiled with XLA, for the bit-identity
tests); ``write_config`` (writes a config file, ``TINY`` by default, into the test's tmp_path);
``reference_run`` (session-scoped: a sweep's run directory, trained once per session and shared, read-only);
``figures`` (the figures the report's plot functions draw, instead of their PNG bytes).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import settings

# XLA off unless a test asks for it (the `xla` fixture): compiling the packed step is most of a tiny sweep's time
# (2.4 s warm with XLA, 0.6 s without), and what most tests check does not depend on it. Set before init_lab is
# imported: the setting is read once, at import (catalog.defaults.XLA, engine.nets.PackedMLP.jit).
os.environ["INITLAB_XLA"] = "0"
# and no test process reads or fills the developer's XLA cache (tests/test_xla_cache.py turns it on in a tmp dir)
os.environ["INITLAB_XLA_CACHE"] = "off"
# nor the decoded-dataset cache (tests/test_caches.py turns it on in a tmp dir)
os.environ["INITLAB_DATA_CACHE"] = "off"

from .helpers import TINY  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The CLI's consoles read the width once, at import: fixed before any test imports it, so tables wrap the same
# on every machine and in every terminal a developer runs the suite from.
os.environ["COLUMNS"] = "160"

# Hypothesis draws the same examples on every run (CI included): a failure reproduces. HYPOTHESIS_PROFILE=explore
# draws new ones, to search further.
settings.register_profile("deterministic", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

HOST_RAM = 16 * 2**30  # what every test's auto memory budget is a share of, whatever this machine has free


@pytest.fixture(autouse=True)
def _python_handles_ctrl_c():
    """Python's own Ctrl-C handler for each test, whatever this process inherited: a job a shell starts in the
    background (``&``) starts with SIGINT ignored and Python leaves it so — in this process and in the sweeps a test
    starts, which inherit an ignored signal (not a handler) — and the interrupt tests failed run that way."""
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, inherited)


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch, tmp_path):
    """No test sees the developer's data dir, fault switches or XLA setting (XLA is off: see `xla`); Keras' cache
    is an empty folder; the auto memory budget is the same on every machine (group sizes do not follow today's
    free RAM)."""
    from init_lab.run import capacity

    monkeypatch.delenv("INITLAB_DATA_DIR", raising=False)
    monkeypatch.setenv("INITLAB_XLA", "0")
    for name in [n for n in os.environ if n.startswith("INITLAB_FAULT_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "160")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setattr(capacity, "host_available_bytes", lambda: HOST_RAM)
    monkeypatch.setattr(capacity, "gpu_free_bytes", lambda: None)


@pytest.fixture
def xla(monkeypatch):
    """The packed step compiled with XLA, as users run it (the default outside the tests): for the tests of
    bit-identity across groups, processes and resumes, in this process and in the processes it starts."""
    from init_lab.catalog import defaults
    from init_lab.engine.nets import PackedMLP

    monkeypatch.setattr(defaults, "XLA", True)
    monkeypatch.setattr(PackedMLP, "jit", True)
    monkeypatch.setenv("INITLAB_XLA", "1")


@pytest.fixture
def write_config(tmp_path) -> Callable[..., Path]:
    def write(text: str = TINY, name: str = "cfg.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory) -> Callable[..., Path]:
    """``reference_run(text, overrides, pack=True)``: the run directory of that sweep, trained once per test
    session (and XLA setting) and shared by every test that asks for the same one. Read it; copy it (helpers.copy_run) to
    change anything."""
    cache: dict[tuple, Path] = {}

    def get(text: str = TINY, overrides: tuple[str, ...] | list[str] = (), pack: bool = True) -> Path:
        from init_lab.catalog import defaults
        from init_lab.config.loading import config_from_text
        from init_lab.run.sweep import run_sweep

        key = (text, tuple(overrides), pack, defaults.XLA)  # a test under `xla` gets a reference made with XLA
        if key not in cache:
            out = tmp_path_factory.mktemp("reference")
            cache[key] = run_sweep(config_from_text(text, overrides=list(overrides)), out=out, pack=pack).run_dir
        return cache[key]

    return get


@pytest.fixture
def figures(monkeypatch):
    """The matplotlib figures the report's plot functions draw, instead of their PNG bytes (closed afterwards)."""
    from init_lab.report import plots

    drawn = []
    monkeypatch.setattr(plots, "_png", lambda fig, tight=True: drawn.append(fig) or b"png")
    yield drawn
    for fig in drawn:
        plots.plt.close(fig)

