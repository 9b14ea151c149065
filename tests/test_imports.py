"""What each entry point imports, in one fresh interpreter: ``import init_lab``, the theory engine, the memory
budget, ``report --help``, ``initlab theory`` and ``initlab report`` import neither TensorFlow nor Keras (and
the first neither pandas; nothing but drawing imports Plotly). The steps run lightest first in one process,
each recording what is imported after it, so one interpreter start serves every check."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from .helpers import TINY, copy_run

STEPS = '''
import json, sys
from typer.testing import CliRunner
loaded = lambda *names: sorted(n for n in names if n in sys.modules)
plotly = lambda: sorted(m for m in sys.modules if m.split(".")[0] == "plotly")[:3]
seen = {}
import init_lab
seen["import init_lab"] = loaded("tensorflow", "keras", "pandas")
import init_lab.analysis.meanfield, init_lab.analysis.theory
seen["theory engine"] = loaded("tensorflow", "keras")
import init_lab.run.memory, init_lab.run.capacity as capacity
capacity.budget_and_source("auto", "auto")
seen["memory budget"] = loaded("tensorflow", "keras")
from init_lab.cli import app
import init_lab.report.render
r = CliRunner().invoke(app, ["report", "--help"])
seen["report --help"] = loaded("tensorflow", "keras") + plotly() + ([] if r.exit_code == 0 else [r.output])
r = CliRunner().invoke(app, ["theory", CONFIG, "--out", OUT])
seen["initlab theory"] = loaded("tensorflow", "keras") + ([] if r.exit_code == 0 else [r.output])
r = CliRunner().invoke(app, ["report", RUN])
seen["initlab report"] = loaded("tensorflow", "keras") + ([] if r.exit_code == 0 else [r.output])
print(json.dumps(seen))
'''


@pytest.fixture(scope="module")
def imported(reference_run, tmp_path_factory):
    """{step: what it imported that it must not (or its error output)} from one interpreter."""
    tmp = tmp_path_factory.mktemp("imports")
    config = tmp / "theory.yaml"
    config.write_text(yaml.safe_dump({"name": "t", "model": {"kind": "mlp", "depth": 10, "width": 64},
                                      "grid": {"initializer": ["he_normal", "lecun_normal"],
                                               "activation": ["relu", "tanh"]}}))
    run = copy_run(reference_run(TINY), tmp / "run")
    code = f"CONFIG, OUT, RUN = {str(config)!r}, {str(tmp / 'out')!r}, {str(run)!r}\n" + STEPS
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("step", ["import init_lab", "theory engine", "memory budget", "report --help",
                                  "initlab theory", "initlab report"])
def test_nothing_heavy_is_imported(imported, step):
    assert imported[step] == [], f"{step} imported {imported[step]}"


LEAN = '''
import json, sys
from init_lab.engine import lean_import
if SKIP:
    lean_import.skip_unused()  # what the console script does first
from init_lab.engine import backend
seen = sorted(n for n in lean_import.UNUSED if n in sys.modules)
import sklearn.datasets, matplotlib.pyplot, scipy.stats  # initlab's own uses, after Keras: importable as ever
print(json.dumps(seen))
'''


@pytest.mark.parametrize("skip", [True, False], ids=["console script", "library caller"])
def test_the_console_scripts_keras_import_skips_what_initlab_never_uses(skip):
    pytest.importorskip("sklearn")
    done = subprocess.run([sys.executable, "-c", f"SKIP = {skip}\n" + LEAN], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert (seen == []) if skip else ({"sklearn", "matplotlib.pyplot", "scipy.sparse"} <= set(seen))
