"""Starter configs for ``initlab init``: a config to copy and edit, commented, valid as written.

The starter is the text of its source (a shipped config, ``quickstart`` by default, or any config file)
with its ``name:`` set to the new name and a header that says how to check, run and change it; the
source's own comments stay. It is validated before anything is written, and an existing file is only
replaced when the caller forces it. This module builds the text; the caller writes it.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from init_lab.catalog.errors import ConfigError
from init_lab.config.loading import config_from_text, load_config
from init_lab.config.shipped import SUFFIXES

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_NAME_LINE = re.compile(r"^name:.*$", re.MULTILINE)  # the top-level name: line of a block-style config

HEADER = """\
# {name}: an initlab sweep config, started from {source} (initlab init).
#   initlab validate {file}    check it: the trials it expands to and how they are grouped
#   initlab sweep {file}       run it (a quick try: --set training.epochs=1), then: initlab report latest
# A field left out takes initlab's default; the run directory's config.yaml shows every field as used.
# Names to choose from: initlab list initializers | activations | models | datasets | optimizers
# Grid entries take parameters, e.g. {{name: random_normal, stddev: 0.01}} or {{name: leaky_relu, alpha: 0.2}};
# depth, width, learning_rate, optimizer and batch_size can be grid axes too.
#
"""


def starter_file(name: str, directory: Path) -> tuple[str, Path]:
    """The config name and the file ``initlab init NAME`` writes in ``directory`` (NAME or NAME.yaml)."""
    stem = name[: -len(suffix)] if (suffix := next((s for s in SUFFIXES if name.endswith(s)), "")) else name
    if not _NAME.fullmatch(stem):
        raise ConfigError(f"'{name}' is not a config name: use letters, digits, '.', '_' and '-' (it becomes "
                          f"the file NAME.yaml in the current directory and the sweep's name).")
    return stem, Path(directory) / f"{stem}{suffix or '.yaml'}"


def starter_text(name: str, source: Path, source_label: str, file_name: str) -> str:
    """The starter config: ``source``'s text renamed to ``name``, under a header; checked to be valid."""
    load_config(source)  # a broken source is reported as itself, file and line
    text = Path(source).read_text(encoding="utf-8")
    header = HEADER.format(name=name, source=source_label, file=file_name)
    body, count = _NAME_LINE.subn(f"name: {name}", text, count=1)
    if not count:  # no top-level `name:` line to rename (e.g. a flow-style file): write it out plainly
        data = yaml.safe_load(text)  # a mapping: load_config said so
        body = yaml.safe_dump({"name": name, **{k: v for k, v in data.items() if k != "name"}}, sort_keys=False)
    result = header + body
    cfg = config_from_text(result, file_name)  # valid as written: the same checks as initlab validate
    if cfg.name != name:
        raise ConfigError(f"{source_label}: could not set the new config's name (found '{cfg.name}').")
    return result


def check_target(path: Path, force: bool) -> None:
    """Refuse to replace an existing file unless forced."""
    if path.is_dir():
        raise ConfigError(f"{path} is a directory: choose another NAME.")
    if path.exists() and not force:
        raise ConfigError(f"{path} exists: pass --force to overwrite it, or choose another NAME.")
