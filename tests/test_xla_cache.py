"""XLA's compiled programs on disk (engine/xla_cache.py): where they go, when the cache stays off, and that
a sweep which loads its programs from the cache computes exactly what the one that compiled them did."""

from __future__ import annotations

import os
import subprocess

import pytest

from init_lab.catalog import defaults
from init_lab.engine import xla_cache

from .helpers import CLI, run_tables


def test_default_folder_is_per_tensorflow_version_and_cpu_under_the_cache_home(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path), "TF_XLA_FLAGS": "--tf_xla_auto_jit=0"}
    folder = xla_cache.configure(env)
    assert folder is not None and folder.is_dir()
    assert folder.parent == tmp_path / "initlab" / "xla"
    assert folder.name.startswith("tf") and folder.name == xla_cache._machine_key()
    assert env["TF_XLA_FLAGS"] == f"--tf_xla_auto_jit=0 {xla_cache.FLAG}={folder}"  # the user's flags kept


def test_a_named_folder_is_used_as_is(tmp_path):
    env = {defaults.XLA_CACHE_ENV: str(tmp_path / "mine")}
    assert xla_cache.configure(env) == tmp_path / "mine"
    assert env["TF_XLA_FLAGS"] == f"{xla_cache.FLAG}={tmp_path / 'mine'}"


@pytest.mark.parametrize("env", [
    {defaults.XLA_CACHE_ENV: "off"},
    {defaults.XLA_CACHE_ENV: "OFF"},
    {"TF_XLA_FLAGS": f"{xla_cache.FLAG}=/somewhere/else"},  # the user's own cache wins
])
def test_off_or_a_users_own_cache_flag_leaves_the_flags_alone(env, tmp_path):
    before = dict(env, XDG_CACHE_HOME=str(tmp_path))
    env = dict(before)
    assert xla_cache.configure(env) is None
    assert env == before
    assert not (tmp_path / "initlab").exists()


def test_an_unusable_folder_means_no_cache_not_an_error_and_a_named_one_says_so(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {defaults.XLA_CACHE_ENV: str(blocker / "xla")}
    assert xla_cache.configure(env) is None
    assert "TF_XLA_FLAGS" not in env
    said = capsys.readouterr().err
    assert f"{defaults.XLA_CACHE_ENV}={blocker / 'xla'} cannot be used" in said and "without the XLA cache" in said
    env = {"XDG_CACHE_HOME": str(blocker)}  # the default folder, unusable: quietly none
    assert xla_cache.configure(env) is None and capsys.readouterr().err == ""


@pytest.mark.slow
def test_a_sweep_that_loads_its_programs_from_the_cache_gives_the_same_tables(tmp_path, write_config):
    cfg = write_config()
    env = {**os.environ, "INITLAB_XLA": "1", defaults.XLA_CACHE_ENV: str(tmp_path / "xla")}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # initlab's own default, as a user's shell has it
    runs = []
    for name in ("compiles", "loads"):
        out = tmp_path / name
        done = subprocess.run(CLI + ["sweep", str(cfg), "--out", str(out)], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""  # loading from the cache logs ERROR lines at TensorFlow's default log level
        runs.append(run_tables(out / "latest"))
        if name == "compiles":
            programs = sorted((tmp_path / "xla").iterdir())
            # one program for the sweep's one packed group: TINY's 480 training examples in batches of 50 end with a
            # partial batch, which runs padded in the window program (not as a program of its own, compiled again)
            assert len(programs) == 1, programs
    assert sorted((tmp_path / "xla").iterdir()) == programs  # the second found every program it needed
    assert runs[0] == runs[1]
