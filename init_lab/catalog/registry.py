"""Named, parameterised choices: the shared machinery of the registries.

A grid entry such as ``{name: random_normal, stddev: 0.01}`` names a registry
entry and overrides some of its parameters. :class:`Registry` resolves such an
entry into a :class:`Choice` (name plus every parameter, defaults filled in),
or raises :class:`ConfigError`-ready messages naming the allowed values.

This module and the registry tables built on it never import TensorFlow, so
``initlab list`` and config validation stay fast: entries are data and plain
functions; the engine (the only package importing TensorFlow) applies them.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from init_lab.catalog.errors import did_you_mean, unknown_name_message


@dataclass(frozen=True)
class Param:
    """One numeric parameter of a registry entry.

    ``aliases`` name values a config may give instead of the number (orthogonal's ``gain: relu``);
    they are resolved to the number when the config is read, so a :class:`Choice` is always numeric.
    With ``names_only`` the parameter is a choice among the aliases (matched's ``base: normal``): a config
    gives one of the names (or the number it stands for), and nothing else.
    """

    default: float
    doc: str
    positive: bool = False  # must be > 0 (a std, a limit, a gain)
    aliases: Mapping[str, float] = field(default_factory=dict)
    names_only: bool = False

    def shown(self, value: float) -> str:
        """The value as a config would give it: its name where the parameter is a choice of names, else the number."""
        return next((n for n, v in self.aliases.items() if v == value), f"{value:g}") if self.names_only else f"{value:g}"


class NegativeSide(enum.Enum):
    """What a ReLU-like activation does for x < 0, which decides how a unit stuck there is counted."""

    DEAD = "dead"  # zero output and zero gradient (relu): a unit ≤ 0 on every input learns nothing
    NEGATIVE_REGIME = "negative_regime"  # still a gradient (leaky_relu, elu, selu, prelu): stuck, not dead


@dataclass(frozen=True)
class Entry:
    """A registry entry: name, what it computes, its parameters, its builder."""

    name: str
    formula: str
    params: Mapping[str, Param] = field(default_factory=dict)
    build: Callable[..., Any] | None = None  # initializers: params → (Keras class name, kwargs), as data
    note: str = ""
    fn: Callable[..., Any] | None = None  # activations: fn(x, ops, params), ops = the engine's tensor functions
    learned: tuple[str, ...] = ()  # activation parameters that are trained variables (PReLU's slope)
    needs_data: bool = False  # initializers that look at a data batch when a trial starts (LSUV)
    # initializers whose variance depends on the trial's activation (matched): ``build`` and ``variance`` then
    # take its σ_w² too, which the engine and the theory compute from the activation (analysis.meanfield)
    needs_activation: bool = False
    orthogonal: bool = False  # initializers drawing a scaled orthogonal kernel, not iid entries (the theory's band)
    # initializers: (params, kernel shape) → Var(W) of one weight; None where no variance says it (constant:
    # not zero-mean; lsuv: data-dependent). Read through initializers.weight_variance.
    variance: Callable[[Mapping[str, float], tuple[int, ...]], float | None] | None = None
    # activations: |x| beyond which φ′(x) < 5 % of its maximum (the flat tails); None if φ has no such tails
    saturation: float | None = None
    negative_side: NegativeSide | None = None  # activations of the ReLU family: see NegativeSide
    reference: str = ""  # optimizers: where the update rule comes from
    # optimizers: the state kept per model variable (Adam's m and v), which the memory estimate counts; with
    # ``momentum_slots`` only when training.momentum > 0 (SGD's velocity: plain SGD keeps none)
    slots: tuple[str, ...] = ()
    momentum_slots: bool = False


@dataclass(frozen=True, order=True)
class Choice:
    """A resolved grid value: a registry name and all of its parameter values."""

    name: str
    params: tuple[tuple[str, float], ...] = ()

    @property
    def kwargs(self) -> dict[str, float]:
        return dict(self.params)

    def label(self, registry: Registry) -> str:
        """Short, human label: the name, plus parameters that differ from the defaults."""
        entry = registry.entries[self.name]
        changed = [(k, v) for k, v in self.params if v != entry.params[k].default]
        if not changed:
            return self.name
        return f"{self.name}({', '.join(f'{k}={_show(entry.params[k], v)}' for k, v in changed)})"

    def as_config(self, registry: Registry) -> str | dict[str, Any]:
        """The YAML form: a bare name when every parameter is at its default."""
        entry = registry.entries[self.name]
        changed = {k: v for k, v in self.params if v != entry.params[k].default}
        return {"name": self.name, **changed} if changed else self.name


def _fmt(value: float) -> str:
    return f"{value:g}"


def _show(param: Param, value: float) -> str:
    """A parameter value in a label: the alias it came from (gain=relu), else the number."""
    return next((name for name, v in param.aliases.items() if v == value), None) or _fmt(value)


class Registry:
    """A table of entries of one kind (initializer, activation, ...)."""

    def __init__(self, kind: str, entries: list[Entry]):
        self.kind = kind
        self.entries: dict[str, Entry] = {e.name: e for e in entries}

    def names(self) -> list[str]:
        return list(self.entries)

    def resolve(self, value: Any) -> Choice:
        """Turn a YAML grid value (a name, or a mapping with 'name' and parameters) into a Choice.

        Raises ValueError with a user-facing message; the config layer adds the field and line.
        """
        if isinstance(value, str):
            name, overrides = value, {}
        elif isinstance(value, Mapping):
            if "name" not in value:
                raise ValueError(
                    f"a parameterised {self.kind} needs a 'name' key, e.g. "
                    f"{{name: {next(iter(self.entries))}, ...}}; got keys {sorted(map(str, value))}."
                )
            name = value["name"]
            overrides = {k: v for k, v in value.items() if k != "name"}
        else:
            raise ValueError(
                f"a {self.kind} is a name or a mapping {{name: ..., param: value}}, "
                f"not {type(value).__name__} {value!r}."
            )
        if not isinstance(name, str) or name not in self.entries:
            raise ValueError(unknown_name_message(self.kind, name, self.entries))
        entry = self.entries[name]
        params: dict[str, float] = {k: p.default for k, p in entry.params.items()}
        for key, raw in overrides.items():
            if key not in entry.params:
                allowed = ", ".join(entry.params) or "none"
                raise ValueError(
                    f"{self.kind} '{name}' has no parameter '{key}'."
                    f"{did_you_mean(str(key), entry.params)} Its parameters: {allowed}."
                )
            aliases = entry.params[key].aliases
            if isinstance(raw, str) and aliases:
                if raw not in aliases:
                    raise ValueError(
                        f"{self.kind} '{name}': parameter '{key}' is a number or one of the names "
                        f"{', '.join(aliases)}; got {raw!r}.{did_you_mean(raw, aliases)}"
                    )
                raw = aliases[raw]
            if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                names = f" or one of the names {', '.join(aliases)}" if aliases else ""
                raise ValueError(f"{self.kind} '{name}': parameter '{key}' must be a number{names}, got {raw!r}.")
            number = float(raw)
            if entry.params[key].names_only and number not in aliases.values():
                raise ValueError(f"{self.kind} '{name}': parameter '{key}' is one of {', '.join(aliases)}; got {raw!r}.")
            if not math.isfinite(number):
                raise ValueError(f"{self.kind} '{name}': parameter '{key}' must be finite, got {raw!r}.")
            if entry.params[key].positive and number <= 0:
                raise ValueError(f"{self.kind} '{name}': parameter '{key}' must be > 0, got {raw!r}.")
            params[key] = number
        return Choice(name, tuple(sorted(params.items())))
