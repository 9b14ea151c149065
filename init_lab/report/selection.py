"""Which initializer + activation combinations the report's figures draw: a rule the page states, or the user's.

A grid of 8 initializers × 7 activations gives 56 curves per chart and 56 panels per per-combination figure: too
many to read, and the first panels in grid order (zeros, N(0, 1)) are the least informative. The default rule, per
activation:

- the **best** initializer (by the report's metric: its mean over seeds, and over other swept axes' values),
- the **worst** one that still has a value (so a failure to learn shows next to what works),
- the **reference** initializers the grid holds: Glorot/Xavier, He/Kaiming and LeCun
  (``REFERENCE_INITIALIZERS``), the comparison most users come for;

while combinations that cannot be compared go into one line instead of a panel or a curve: constant weights
(``zeros``, ``constant``: every unit of a layer computes the same function, so there is nothing to see per layer)
and combinations without a value (every trial failed or unfinished). ``select=`` (``initlab report --select``)
names combinations instead: ``he_normal+relu``, ``he_normal`` (with every activation), ``relu`` (every
initializer with relu), ``*+tanh``; then exactly those are drawn, constant ones too.

Interactive charts hold every combination (a dropdown per activation shows them all); the PNGs draw the selection.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from init_lab.catalog.errors import ConfigError, unknown_name_message
from init_lab.report.rundata import RunData

# initializers drawn for every activation by the default rule (matched by registry name, parameters aside)
REFERENCE_INITIALIZERS = ("glorot_uniform", "glorot_normal", "he_normal", "he_uniform", "lecun_normal",
                          "lecun_uniform")
CONSTANT_INITIALIZERS = ("zeros", "constant")  # no randomness: every unit of a layer stays identical
ROLE_ORDER = ("best", "reference", "worst", "named")
RULE_TEXT = ("Drawn per activation: the best initializer by {metric}, the worst one with a value, and the reference "
             "initializers in the grid (Glorot/Xavier, He/Kaiming, LeCun). {summarised}")
NAMED_TEXT = "Drawn: the combinations named by --select ({named})."


def base_name(init_label: str) -> str:
    """The registry name of an initializer label: 'random_normal(stddev=0.01)' → 'random_normal'."""
    return init_label.split("(", 1)[0]


@dataclass(frozen=True)
class Pick:
    """One drawn combination and why it is drawn (one or more of ``ROLE_ORDER``)."""

    initializer: str
    activation: str
    roles: tuple[str, ...]

    @property
    def role_text(self) -> str:
        return "/".join(r for r in self.roles if r != "named")


@dataclass(frozen=True)
class Selection:
    """The combinations a report draws (``picks``, activation then grid order), the ones it summarises instead
    (``summarised``: (initializer, activation, reason)), and the sentence that states the rule (``text``)."""

    picks: list[Pick]
    summarised: list[tuple[str, str, str]] = field(default_factory=list)
    named: tuple[str, ...] = ()
    metric_label: str = ""

    def includes(self, initializer: str, activation: str) -> bool:
        return any(p.initializer == initializer and p.activation == activation for p in self.picks)

    def initializers(self, activation: str) -> list[str]:
        """The drawn initializers of ``activation``, in grid order."""
        return [p.initializer for p in self.picks if p.activation == activation]

    def activations(self) -> list[str]:
        return list(dict.fromkeys(p.activation for p in self.picks))

    def pick(self, initializer: str, activation: str) -> Pick | None:
        return next((p for p in self.picks if p.initializer == initializer and p.activation == activation), None)

    @property
    def summary_line(self) -> str:
        """The combinations that are not drawn, in one line ('' when every one is drawn)."""
        if not self.summarised:
            return ""
        by_reason: dict[str, dict[str, list[str]]] = {}
        for init, act, reason in self.summarised:
            by_reason.setdefault(reason, {}).setdefault(init, []).append(act)
        parts = []
        for reason, inits in by_reason.items():
            names = [f"{init} with {_acts(acts)}" for init, acts in inits.items()]
            parts.append(f"{reason}: " + "; ".join(names))
        return "Not drawn — " + " | ".join(parts) + "."

    @property
    def text(self) -> str:
        """The rule as the page states it, with what it leaves out."""
        if self.named:
            head = NAMED_TEXT.format(named=", ".join(self.named))
            return head + (" " + self.summary_line if self.summary_line else "")
        rest = self.summary_line or "Every other combination is drawn too."
        return RULE_TEXT.format(metric=self.metric_label or "the metric", summarised=rest)


def _acts(acts: list[str]) -> str:
    return acts[0] if len(acts) == 1 else f"{len(acts)} activations ({', '.join(acts)})"


_PLUS = re.compile(r"^\s*(.*?)\s*\+\s*(.*?)\s*$")


def parse_select(items: str | Iterable[str] | None, inits: Sequence[str], acts: Sequence[str]) -> list[tuple[str, str]]:
    """``select`` items (each 'INIT+ACT', 'INIT', 'ACT', '*+ACT' or 'INIT+*'; several in one string separated by
    commas) as the (initializer, activation) pairs of the grid they name, in grid order. Names are the labels the
    report shows (``random_normal(stddev=0.01)``); a bare registry name matches every label of it. ConfigError
    naming the item, the allowed values and the nearest match for a name the grid does not hold."""
    if items is None:
        return []
    if isinstance(items, str):
        items = [items]
    wanted: set[tuple[str, str]] = set()
    for item in (part for raw in items for part in _split(str(raw))):
        match = _PLUS.match(item)
        if match:
            init_names, act_names = (_matching(match.group(1), inits, "initializer", item),
                                     _matching(match.group(2), acts, "activation", item))
        elif _names(item, inits):
            init_names, act_names = _names(item, inits), list(acts)
        elif _names(item, acts):
            init_names, act_names = list(inits), _names(item, acts)
        else:
            raise ConfigError("--select: " + unknown_name_message(
                "initializer or activation", item, [*inits, *acts]) + " Write INIT+ACT, e.g. "
                f"'{inits[0]}+{acts[0]}' (either side may be '*').")
        wanted |= {(i, a) for i in init_names for a in act_names}
    return [(i, a) for a in acts for i in inits if (i, a) in wanted]


def _split(raw: str) -> list[str]:
    """Commas outside parentheses separate items ('random_normal(stddev=1, x=2)+relu' stays one)."""
    parts, depth, start = [], 0, 0
    for k, ch in enumerate(raw):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(raw[start:k])
            start = k + 1
    parts.append(raw[start:])
    return [p.strip() for p in parts if p.strip()]


def _names(name: str, labels: Sequence[str]) -> list[str]:
    if name in ("*", ""):
        return list(labels)
    exact = [x for x in labels if x == name]
    return exact or [x for x in labels if base_name(x) == name]


def _matching(name: str, labels: Sequence[str], kind: str, item: str) -> list[str]:
    found = _names(name, labels)
    if not found:
        raise ConfigError(f"--select '{item}': " + unknown_name_message(kind, name, labels))
    return found


def select(run: RunData, cells: pd.DataFrame, higher: bool, metric_label: str = "",
           named: str | Iterable[str] | None = None) -> Selection:
    """The report's selection (see the module's docstring). ``cells``: ``verdicts.Verdicts.cells`` (a row per cell
    with ``mean``); ``higher``: whether a higher metric is better; ``named``: the user's ``select`` items."""
    inits = [i for i in run.init_order if i in set(run.summary["initializer"])]
    acts = [a for a in run.act_order if a in set(run.summary["activation"])]
    means = _means(cells)
    if named:
        items = [named] if isinstance(named, str) else list(named)
        pairs = parse_select(items, inits, acts)
        picks = [Pick(i, a, ("named",)) for i, a in pairs]
        left = [(i, a, "not named by --select") for a in acts for i in inits if (i, a) not in set(pairs)]
        return Selection(picks, left, tuple(items), metric_label)
    picks, summarised = [], []
    for act in acts:
        valued = []
        for init in inits:
            if base_name(init) in CONSTANT_INITIALIZERS:
                summarised.append((init, act, "constant weights (units stay identical)"))
            elif pd.isna(means.get((init, act))):
                summarised.append((init, act, "no value (failed or unfinished)"))
            else:
                valued.append(init)
        if not valued:
            continue
        ranked = sorted(valued, key=lambda i: means[(i, act)], reverse=higher)  # stable: grid order breaks ties
        roles: dict[str, list[str]] = {}
        roles.setdefault(ranked[0], []).append("best")
        for init in valued:
            if base_name(init) in REFERENCE_INITIALIZERS:
                roles.setdefault(init, []).append("reference")
        if len(ranked) > 1:
            roles.setdefault(ranked[-1], []).append("worst")
        picks += [Pick(i, act, tuple(r for r in ROLE_ORDER if r in roles[i])) for i in valued if i in roles]
        summarised += [(i, act, "not best, worst or reference (in report.html: 'all')") for i in valued
                       if i not in roles]
    return Selection(picks, summarised, (), metric_label)


def _means(cells: pd.DataFrame) -> dict[tuple[str, str], float]:
    """The metric's mean per (initializer, activation), over the cells of other swept axes."""
    if cells.empty:
        return {}
    grouped = cells.groupby(["initializer", "activation"])["mean"].mean()
    return {key: float(v) for key, v in grouped.items()}


def for_run(run: RunData, verdicts, named: str | Iterable[str] | None = None) -> Selection:
    """``select`` with a run's verdicts (``verdicts.Verdicts``)."""
    return select(run, verdicts.cells, verdicts.higher, verdicts.label, named)
