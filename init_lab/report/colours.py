"""The heatmaps' colour scale, one for every medium (terminal pivot, HTML table, PNG, interactive chart).

``shading`` places each cell of ``verdicts.cells`` on the scale (0 … 1, NaN for a cell drawn apart);
``Shading.matrix`` gives one facet's places as an initializer × activation matrix; ``colour_label`` and
``tick_labels`` title and label a colour bar. Each medium only maps a place to its own colours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from init_lab.catalog import defaults
from init_lab.report.rundata import RunData
from init_lab.report.tables import fmt, fmt_diff, matrix

if TYPE_CHECKING:  # annotations only: verdicts imports SciPy's statistics, which a sweep's leaderboard never needs
    from init_lab.report.verdicts import Verdicts


@dataclass(frozen=True)
class Shading:
    """Where each cell sits on a heatmap's colour scale, shared by every heatmap (terminal, HTML, PNG, chart).

    By gap (a group of two cells or more): 1 is the group's best, 0 the largest gap to a group's best, on a log
    scale over ``SHADE_DECADES`` decades (so gaps of 0.1, 1 and 10 points differ in colour when the largest is
    80); by value otherwise (the range of the means). Cells with no value or at chance are NaN: drawn apart."""

    position: pd.Series  # aligned with the cells
    ticks: tuple[tuple[float, float], ...]  # (position, the gap or value there) for a colour bar
    by_gap: bool

    def matrix(self, run: RunData, part: pd.DataFrame) -> pd.DataFrame:
        """One facet's places (``part``: some rows of the cells) as an initializer × activation matrix."""
        return matrix(part.assign(position=self.position.loc[part.index]), run, "position")


def shading(cells: pd.DataFrame, higher: bool) -> Shading:
    """The cells' places on the colour scale (see ``Shading``); ``higher``: whether a higher mean is better."""
    apart = cells["mean"].isna() | cells["at_chance"].astype(bool)
    if cells.loc[~apart, "diff_to_best"].notna().any():
        gap = cells["diff_to_best"].abs().where(~apart)
        largest = float(gap.max())
        if largest == 0:
            return Shading(pd.Series(1.0, index=cells.index).where(gap.notna()), ((1.0, 0.0),), True)
        floor = largest / 10**defaults.SHADE_DECADES
        scale = math.log1p(largest / floor)

        def at(g: float) -> float:
            return 1 - math.log1p(g / floor) / scale

        ticks = [(1.0, 0.0)]
        for k in range(math.ceil(math.log10(floor)), math.floor(math.log10(largest)) + 1):
            if 0.12 < at(10.0**k) < 0.88:  # decades, not crowding the ends
                ticks.append((at(10.0**k), 10.0**k))
        ticks.append((0.0, largest))
        return Shading(gap.map(lambda g: at(g) if pd.notna(g) else math.nan), tuple(ticks), True)
    means = cells["mean"].where(~apart)
    if means.notna().sum() == 0:
        return Shading(means, (), False)
    lo, hi = float(means.min()), float(means.max())
    position = (means - lo) / ((hi - lo) or 1)
    position = position if higher else 1 - position
    ticks = ((0.0, lo), (1.0, hi)) if higher else ((1.0, lo), (0.0, hi))
    return Shading(position, ticks, False)


def colour_label(verdicts: Verdicts, shade: Shading) -> str:
    """What a heatmap's colour shows, for its colour bar or caption."""
    if not shade.by_gap:
        return verdicts.label
    group = f"its {', '.join(verdicts.fixed)}" if verdicts.fixed else "the run"
    return f"gap to the best {verdicts.axis} of {group} (log scale)"


def tick_labels(verdicts: Verdicts, shade: Shading) -> list[str]:
    """The colour bar's labels at ``shade.ticks``: gaps as signed differences from the best (−1.00 pt, or +0.05
    for a loss), values as they are."""
    if not shade.by_gap:
        return [fmt(value, 3) for _, value in shade.ticks]
    sign = -1 if verdicts.higher else 1
    return ["best" if gap == 0 else fmt_diff(sign * gap, verdicts.metric) for _, gap in shade.ticks]
