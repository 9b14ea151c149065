"""The sweep configs shipped inside the package, and how a CONFIG argument finds its file.

The configs live in ``init_lab/configs/*.yaml`` (package data: they travel in the wheel and the sdist;
the repository's ``configs/`` is a link to that folder, so there is one copy). A shipped config is
known by its file name without ``.yaml`` (``quickstart``); the first line of each file is a ``#``
comment, its one-line description (what ``initlab configs`` lists).

Every command that takes a CONFIG resolves it with :func:`resolve_config`: an existing path always
wins; otherwise a plain name (no directory part, ``.yaml`` optional) is the shipped config of that
name; neither is a :class:`~init_lab.catalog.errors.ConfigError` naming the nearest shipped config.
This module reads files but writes none.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from init_lab.catalog.errors import ConfigError, did_you_mean

SUFFIXES = (".yaml", ".yml")


def shipped_dir() -> Path:
    """The folder of the shipped configs, inside the installed package."""
    return Path(str(resources.files("init_lab").joinpath("configs")))


def shipped_configs() -> dict[str, Path]:
    """Every shipped config, name → file, sorted by name."""
    folder = shipped_dir()
    files = sorted(p for p in folder.iterdir() if p.suffix == ".yaml") if folder.is_dir() else []
    return {p.stem: p for p in files}


def description(path: Path) -> str:
    """A config's one-line description: its first line, when that line is a ``#`` comment ('' otherwise)."""
    with open(path, encoding="utf-8") as f:
        first = f.readline().strip()
    return first.lstrip("#").strip() if first.startswith("#") else ""


@dataclass(frozen=True)
class ResolvedConfig:
    """The file a CONFIG argument names, and whether it is a shipped config (found by name)."""

    path: Path
    name: str | None = None  # the shipped config's name, None for a path given as such

    @property
    def shipped(self) -> bool:
        return self.name is not None


def resolve_config(config: str | Path) -> ResolvedConfig:
    """The file of a CONFIG argument: an existing path as given, else the shipped config of that name.

    Raises ConfigError when it is neither, with the nearest shipped name and the list of them.
    """
    given = str(config)
    path = Path(given)
    if given and path.exists():
        return ResolvedConfig(path)
    shipped = shipped_configs()
    stem = path.stem if path.suffix in SUFFIXES else path.name
    is_name = bool(given) and path.name == given and stem not in ("", ".", "..")  # no directory part
    if is_name and stem in shipped:
        return ResolvedConfig(shipped[stem], stem)
    names = ", ".join(shipped) or "none"
    what = (f"no config file '{given}' here, and no shipped config of that name." if is_name
            else f"config file {given} does not exist.")
    raise ConfigError(f"{what}{did_you_mean(stem, shipped)} Shipped configs: {names} "
                      "(initlab configs describes them).")
