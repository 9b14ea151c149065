"""initlab as an installed package: the wheel and sdist carry the shipped configs and the MNIST sample;
outside the repository the installed command finds configs by name, writes a starter config and runs the
quick start; ``python -m init_lab`` runs the CLI; every ``--help`` shows flags as flags and ends with
examples that parse."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import typer

from init_lab.cli import app
from init_lab.config.loading import config_from_text, load_config
from init_lab.config.shipped import description, resolve_config, shipped_configs
from init_lab.config.starter import starter_text

from .helpers import REPO, assert_clean_exit, invoke

SHIPPED = sorted(p.stem for p in (REPO / "init_lab" / "configs").glob("*.yaml"))
# what a build copies: the working tree without its outputs (a build writes build/ and *.egg-info next to the code)
IGNORE = shutil.ignore_patterns(".venv", "runs", ".git", "build", "dist", "*.egg-info", "__pycache__",
                                ".hypothesis", ".pytest_cache")
TINY = """\
name: mine
dataset: {name: synthetic, synthetic_train: 200, synthetic_test: 50}
model: {kind: mlp, hidden: [8]}
grid: {initializer: [he_normal], activation: [relu]}
training: {epochs: 1}
device: cpu
"""
# the quick start, cut to a few hundred digits and one epoch
QUICK = ["--set", "training.epochs=1", "--set", "dataset.train_size=500", "--set", "dataset.test_size=100"]


# --- one copy of the shipped configs, each with its description ------------------------------------------

def test_the_repositorys_configs_folder_is_the_packages():
    assert (REPO / "configs").resolve() == (REPO / "init_lab" / "configs").resolve()
    assert sorted(shipped_configs()) == SHIPPED and "quickstart" in SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_config_has_a_one_line_description_and_starts_a_valid_config(name):
    path = shipped_configs()[name]
    text = description(path)
    assert text and len(text) <= 110 and path.read_text(encoding="utf-8").startswith("# "), text
    starter = starter_text("fresh", path, f"the shipped config '{name}'", "fresh.yaml")
    cfg = config_from_text(starter, "fresh.yaml")
    assert cfg.name == "fresh"
    assert config_from_text(starter.replace("name: fresh", f"name: {load_config(path).name}", 1)) == load_config(path)


# --- CONFIG: a path wins, a name is a shipped config, neither is a did-you-mean error --------------------

def test_a_name_resolves_to_the_shipped_config_and_says_which_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for given in ("smoke", "smoke.yaml"):
        result = invoke("validate", given)
        assert_clean_exit(result, 0)
        assert f"using the shipped config 'smoke': {shipped_configs()['smoke']}" in result.stderr
        assert "config 'smoke'" in result.stdout and "using" not in result.stdout


def test_a_path_always_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quickstart").write_text(TINY, encoding="utf-8")  # a file named like a shipped config
    result = invoke("validate", "quickstart")
    assert_clean_exit(result, 0)
    assert "config 'mine'" in result.stdout and "shipped" not in result.stderr
    assert resolve_config("quickstart").path == Path("quickstart") and not resolve_config("quickstart").shipped


def test_the_note_points_at_a_local_file_of_the_same_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "smoke.yaml").write_text(TINY, encoding="utf-8")
    result = invoke("validate", "smoke")  # the name, not the file: the shipped config, and a hint
    assert_clean_exit(result, 0)
    assert "config 'smoke'" in result.stdout and "for ./smoke.yaml, give the file name" in result.stderr


@pytest.mark.parametrize("command", [["sweep"], ["probe"], ["theory"], ["validate"], ["init", "x", "--from"]])
def test_neither_a_file_nor_a_shipped_name_is_a_did_you_mean_error(command, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = invoke(*command, "quickstrt")
    assert_clean_exit(result, 1)
    assert "no shipped config of that name. Did you mean 'quickstart'?" in result.stderr
    assert all(name in result.stderr for name in SHIPPED)
    assert list(work.iterdir()) == []  # nothing written, no run directory


def test_a_missing_path_is_not_looked_up_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("validate", "elsewhere/quickstart.yaml")
    assert_clean_exit(result, 1)
    assert "config file elsewhere/quickstart.yaml does not exist. Did you mean 'quickstart'?" in result.stderr


# --- initlab init ---------------------------------------------------------------------------------------------

def test_init_writes_a_commented_starter_that_validates_and_is_never_overwritten_unasked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("init")
    assert_clean_exit(result, 0)
    path = tmp_path / "experiment.yaml"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# experiment: an initlab sweep config, started from the shipped config 'quickstart'")
    assert "initlab sweep experiment.yaml" in text and "name: experiment\n" in text
    assert text.count("#") > 15  # commented: the header and quickstart's own notes
    assert_clean_exit(invoke("validate", "experiment.yaml"), 0)
    assert load_config(path).grid == load_config(shipped_configs()["quickstart"]).grid

    path.write_text("# mine\n", encoding="utf-8")
    again = invoke("init")
    assert_clean_exit(again, 1)
    assert "exists: pass --force" in again.stderr and path.read_text() == "# mine\n"
    assert_clean_exit(invoke("init", "--force"), 0)
    assert path.read_text(encoding="utf-8") == text


def test_init_names_the_file_and_starts_from_any_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_clean_exit(invoke("init", "deep-relu", "--from", "he2015"), 0)
    cfg = load_config(tmp_path / "deep-relu.yaml")
    assert cfg.name == "deep-relu" and cfg.grid == load_config(shipped_configs()["he2015"]).grid

    (tmp_path / "mine.yaml").write_text(TINY, encoding="utf-8")  # a file of one's own
    assert_clean_exit(invoke("init", "copy.yaml", "--from", "mine.yaml"), 0)
    assert load_config(tmp_path / "copy.yaml").name == "copy"
    (tmp_path / "flow.yaml").write_text("{grid: {initializer: [zeros], activation: [tanh]}}\n", encoding="utf-8")
    assert_clean_exit(invoke("init", "flowing", "--from", "flow.yaml"), 0)  # no name: line to rename: written out plainly
    assert load_config(tmp_path / "flowing.yaml").name == "flowing"
    (tmp_path / "broken.yaml").write_text("grid: [unclosed\n", encoding="utf-8")
    broken = invoke("init", "never", "--from", "broken.yaml")
    assert_clean_exit(broken, 1)
    assert "broken.yaml:" in broken.stderr and "not valid YAML" in broken.stderr  # the source's own error
    for extra in ("flow.yaml", "flowing.yaml", "broken.yaml"):
        (tmp_path / extra).unlink()

    for bad in ("../outside", "sub/dir", "-x"):
        result = invoke("init", "--", bad) if bad.startswith("-") else invoke("init", bad)
        assert_clean_exit(result, 1)
        assert "is not a config name" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.yaml", "deep-relu.yaml", "mine.yaml"]


# --- help: flags as flags, real examples at the end -------------------------------------------------------------

def _commands():
    group = typer.main.get_command(app)
    return group, sorted(group.list_commands(None))


@pytest.mark.parametrize("command", [None, *_commands()[1]])
def test_help_shows_flags_as_flags_and_ends_with_examples_that_parse(command):
    args = [command, "--help"] if command else ["--help"]
    result = invoke(*args)
    assert_clean_exit(result, 0)
    assert "<bool>" not in result.output, result.output
    assert "--help " in result.output and "Show this message and exit." in result.output
    tail = result.output.rstrip().split("Examples:")
    assert len(tail) == 2, result.output
    examples = [line.strip() for line in tail[1].strip().splitlines()]
    assert 1 <= len(examples) <= 3 and all(e.startswith("initlab ") for e in examples), examples
    group, names = _commands()
    for line in examples:
        for part in line.split("&&"):
            argv = shlex.split(part)[1:]
            assert argv[0] in names, line
            sub = group.get_command(None, argv[0])
            if command:
                assert argv[0] == command, line
            ctx = sub.make_context(argv[0], argv[1:])  # parses: every option, value and choice exists
            for key in ("config", "source"):
                value = ctx.params.get(key)
                if value and not value.endswith(".yaml"):  # a name in an example is a shipped config
                    assert resolve_config(value).shipped, line


def test_a_flag_is_followed_by_its_help_not_a_value():
    result = invoke("sweep", "--help")
    for row in (r"--dry-run\s+Print the expanded plan", r"--retry-failed\s+With --resume", r"-y\s+Run a large sweep",
                r"--no-pack\s+Train compatible"):
        assert re.search(row, result.output), (row, result.output)


def test_python_m_init_lab_runs_the_cli(tmp_path):
    result = subprocess.run([sys.executable, "-m", "init_lab", "--version"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("initlab "), result.stderr


# --- the built wheel and sdist, installed outside the repository ---------------------------------------------

@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, Path]:
    """The sdist and the wheel of this tree, built offline as a user would (no network, no build isolation)."""
    root = tmp_path_factory.mktemp("build")
    src = root / "src"
    shutil.copytree(REPO, src, symlinks=True, ignore=IGNORE)
    out = root / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(out)], cwd=src, check=True, capture_output=True, timeout=300)
    sdist = subprocess.run([sys.executable, "-c", f"from setuptools import build_meta; "
                            f"print(build_meta.build_sdist({str(root / 'sdist')!r}))"],
                           cwd=src, check=True, capture_output=True, text=True, timeout=300)
    return {"wheel": next(out.glob("initlab-*.whl")), "sdist": root / "sdist" / sdist.stdout.strip().splitlines()[-1]}


@pytest.fixture(scope="module")
def site(dists, tmp_path_factory) -> Path:
    """The wheel installed (alone) into a folder that goes first on PYTHONPATH, with its `initlab` script."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(target),
                    str(dists["wheel"])], check=True, capture_output=True, timeout=300)
    return target


def installed(site: Path, cwd: Path, *args: str, module: bool = False) -> subprocess.CompletedProcess:
    """The installed initlab (its script, or ``python -m init_lab``), run in ``cwd``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "COLUMNS": "200"}
    command = [sys.executable, "-m", "init_lab"] if module else [str(site / "bin" / "initlab")]
    return subprocess.run([*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _members(names: list[str], prefix: str) -> set[str]:
    return {n[len(prefix):] for n in names if n.startswith(prefix)}


EXPECTED = {*(f"init_lab/configs/{n}.yaml" for n in SHIPPED), "init_lab/data/mnist_sample.npz",
            "init_lab/data/MNIST_SAMPLE_LICENSE.md", "init_lab/__main__.py"}


@pytest.mark.slow
def test_the_wheel_carries_the_configs_the_sample_and_main(dists):
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        names = wheel.namelist()
        assert EXPECTED <= set(names), EXPECTED - set(names)
        for name in SHIPPED:  # the same files as the repository's configs/: one copy
            assert wheel.read(f"init_lab/configs/{name}.yaml") == (REPO / "configs" / f"{name}.yaml").read_bytes()


@pytest.mark.slow
def test_the_sdist_carries_them_too_and_builds_the_same_wheel(dists, tmp_path):
    with tarfile.open(dists["sdist"]) as sdist:
        names = _members(sdist.getnames(), sdist.getnames()[0].split("/")[0] + "/")
    assert EXPECTED <= names, EXPECTED - names
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(dists["sdist"]), "--no-deps", "--no-build-isolation",
                    "--no-index", "-w", str(tmp_path)], check=True, capture_output=True, timeout=300)
    with zipfile.ZipFile(next(tmp_path.glob("initlab-*.whl"))) as wheel:  # `pip install initlab-….tar.gz`'s wheel
        assert EXPECTED <= set(wheel.namelist())


@pytest.mark.slow
def test_installed_initlab_works_from_an_empty_directory(site, tmp_path):
    work = tmp_path / "empty"
    work.mkdir()
    where = subprocess.run([sys.executable, "-c", "import init_lab; print(init_lab.__file__)"], cwd=work,
                           env={**os.environ, "PYTHONPATH": str(site)}, capture_output=True, text=True)
    assert Path(where.stdout.strip()).is_relative_to(site), where  # the wheel's copy, not the repository's

    helped = installed(site, work, "--help", module=True)
    assert helped.returncode == 0 and "Usage: python -m init_lab" in helped.stdout, helped.stderr
    assert "<bool>" not in helped.stdout

    listed = installed(site, work, "configs")
    assert listed.returncode == 0, listed.stderr
    for name in SHIPPED:
        assert name in listed.stdout and description(shipped_configs()[name]) in listed.stdout

    started = installed(site, work, "init")
    assert started.returncode == 0 and (work / "experiment.yaml").is_file(), started.stderr
    checked = installed(site, work, "validate", "experiment.yaml")
    assert checked.returncode == 0 and "config is valid" in checked.stdout, checked.stderr

    wrong = installed(site, work, "sweep", "quickstrt")
    assert wrong.returncode == 1 and "Did you mean 'quickstart'?" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    assert sorted(p.name for p in work.iterdir()) == ["experiment.yaml"]


@pytest.mark.slow
def test_installed_quickstart_runs_by_name_from_an_empty_directory(site, tmp_path):
    work = tmp_path / "empty"
    work.mkdir()
    swept = installed(site, work, "sweep", "quickstart", *QUICK)
    assert swept.returncode == 0, swept.stderr[-3000:]
    assert f"using the shipped config 'quickstart': {site / 'init_lab' / 'configs' / 'quickstart.yaml'}" in swept.stderr
    assert "16 trials (16 completed)" in swept.stdout
    assert (work / "runs" / "latest" / "summary.csv").is_file()


def test_the_python_api_takes_a_shipped_name_too(tmp_path, monkeypatch):
    from init_lab.api import _config
    from init_lab.catalog.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    assert _config("smoke", ["training.epochs=1"]) == load_config(shipped_configs()["smoke"], ["training.epochs=1"])
    with pytest.raises(ConfigError, match="Did you mean 'smoke'"):
        _config("smoky", None)
