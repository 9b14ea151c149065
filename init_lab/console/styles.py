"""The terminal's colours (rich styles), shared by the live progress and the tables: a trial's status, a cell's
standing against its group's best, and a heatmap cell's place on the colour scale (``report.colours``)."""

from __future__ import annotations

# a trial status (its stored value)
STATUS_STYLE = {"completed": "green", "diverged": "bold red", "failed": "bold red", "running": "yellow", "pending": "dim"}
# a cell's standing against its group's best (the leaderboard's vs_best column)
VERDICT_STYLE = {"best": "bold green", "tied with best": "green", "behind best": "", "ahead of best": "yellow"}


def heat_style(t: float) -> str:
    """Background from red (worst, t=0) through yellow to green (best, t=1), dark text."""
    t = min(1.0, max(0.0, t))
    r, g = (220, int(80 + 160 * t * 2)) if t < 0.5 else (int(220 - 170 * (t - 0.5) * 2), 220)
    return f"black on rgb({r},{min(g, 220)},90)"
