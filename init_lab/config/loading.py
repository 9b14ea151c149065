"""Reading sweep configs: YAML text, a file or Python data → a validated :class:`SweepConfig`, and back (DESIGN §3).

YAML is parsed with ``yaml.safe_load`` semantics only (nothing is ever evaluated); its node tree is kept
for line numbers, so every error names the file, the line, the field, the allowed values and the nearest
match (``config.messages``). ``--set key=value`` overrides are applied to the parsed mapping before
validation, and errors in them say so.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from init_lab.catalog.errors import ConfigError
from init_lab.config.messages import format_error
from init_lab.config.schema import SECTIONS, SweepConfig

# --- YAML with line numbers -------------------------------------------------------


def _line_map(node: yaml.Node, source: str, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Map each field path (('grid', 'initializer', 2), ...) to its 1-based line; reject duplicate keys."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            line = key_node.start_mark.line + 1
            if key is not None and key in seen:
                where = ".".join(map(str, path + (key,)))
                raise ConfigError(f"{source}:{line}: duplicate key '{where}' (first given on line {seen[key]}).")
            if key is not None:
                seen[key] = line
                out[path + (key,)] = line
                _line_map(value_node, source, path + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, source, path + (i,), out)
    return out


def parse_yaml(text: str, source: str) -> tuple[dict[str, Any], dict[tuple, int]]:
    """Parse YAML text safely into a mapping plus its line map; ConfigError on anything else."""
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML: {problem}.") from None
    except (ValueError, TypeError, RecursionError) as exc:  # e.g. unhashable keys, absurd nesting
        raise ConfigError(f"{source}: cannot be read as a sweep config: {exc}.") from None
    if data is None:
        raise ConfigError(f"{source} is empty: a sweep config is a YAML mapping with at least a 'grid' section.")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: a sweep config is a YAML mapping (name:, dataset:, model:, grid:, training:), "
            f"not a {type(data).__name__}."
        )
    return data, _line_map(node, source)


# --- --set overrides --------------------------------------------------------------


def parse_override(text: str) -> tuple[tuple[str, ...], Any]:
    """'training.epochs=3' → (('training', 'epochs'), 3). Values are YAML scalars/lists (safe_load)."""
    if not isinstance(text, str) or "=" not in text:
        raise ConfigError(f"--set expects key=value (e.g. training.epochs=3), got {text!r}.")
    key, raw = text.split("=", 1)
    parts = tuple(p.strip() for p in key.split("."))
    if not key.strip() or any(not p for p in parts):
        raise ConfigError(f"--set {text!r}: the key must be a dotted path such as training.epochs.")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: value {raw!r} is not valid YAML ({getattr(exc, 'problem', exc)}).") from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise ConfigError(f"--set {key}: value {raw!r} cannot be read ({exc}).") from None
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> set[tuple[str, ...]]:
    """Apply --set overrides in place; return the overridden paths (for error messages)."""
    touched: set[tuple[str, ...]] = set()
    for text in overrides:
        parts, value = parse_override(text)
        node = data
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                raise ConfigError(f"--set {'.'.join(parts)}: '{where}' is not a section (it holds {child!r}).")
            node = child
        node[parts[-1]] = value
        touched.add(parts)
    return touched


# --- loading and validation -------------------------------------------------------


def load_config(path: str | Path, overrides: list[str] | None = None) -> SweepConfig:
    """Read, override and validate a sweep config file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {p} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {p}: {exc}.") from None
    return config_from_text(text, str(p), overrides, default_name=p.stem)


def config_from_text(
    text: str, source: str = "<config>", overrides: list[str] | None = None, default_name: str = "sweep"
) -> SweepConfig:
    data, lines = parse_yaml(text, source)
    return _validate(data, source, lines, overrides, default_name)


def config_from_dict(data: Mapping[str, Any], source: str = "<dict>", overrides: list[str] | None = None,
                     default_name: str = "sweep") -> SweepConfig:
    """Validate a config given as Python data (the Python API): the same checks and messages as a file's."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a config is a mapping of sections (name, dataset, model, grid, training, …), "
                          f"got {type(data).__name__}.")
    return _validate(copy.deepcopy(dict(data)), source, {}, overrides, default_name)


def _validate(data: dict[str, Any], source: str, lines: dict[tuple, int], overrides: list[str] | None,
              default_name: str) -> SweepConfig:
    touched = apply_overrides(data, overrides or [])
    data.setdefault("name", default_name)
    bad_keys = [k for k in data if not isinstance(k, str)]
    if bad_keys:
        raise ConfigError(f"{source}: field names must be text, got {bad_keys[0]!r}.")
    try:
        return SweepConfig.model_validate(data)
    except ValidationError as exc:
        messages = [format_error(e, source, lines, touched, SECTIONS) for e in exc.errors(include_url=False)]
        raise ConfigError("invalid config:\n  " + "\n  ".join(messages)) from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise ConfigError(f"{source}: invalid config: {exc}") from None


def config_to_yaml(config: SweepConfig) -> str:
    return yaml.safe_dump(config.resolved(), sort_keys=False, allow_unicode=True)
