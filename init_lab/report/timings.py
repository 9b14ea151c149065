"""Where the time of a run's last invocation went (manifest.json ``timings``): a table by phase, and a line.

Runs recorded before timings existed have none: the report then says nothing about them.
"""

from __future__ import annotations

import pandas as pd

from init_lab.report.rundata import RunData
from init_lab.runschema.timings import PHASES


def timings_table(run: RunData) -> pd.DataFrame | None:
    """phase, seconds, share of the wall time, what the phase is; None for a run without timings."""
    recorded = run.manifest.timings or {}
    phases, wall = recorded.get("sweep") or {}, recorded.get("wall_seconds")
    if not phases or not wall:
        return None
    rows = [{"phase": p, "seconds": float(s), "share": float(s) / float(wall), "what": PHASES.get(p, "")}
            for p, s in phases.items()]
    return pd.DataFrame(rows).sort_values("seconds", ascending=False, kind="stable").reset_index(drop=True)


def timings_line(run: RunData, top: int = 4) -> str:
    """"8.7 s: imports 36 %, first_window 28 %, files 17 %, initial 13 %" — or '' without timings."""
    table = timings_table(run)
    if table is None:
        return ""
    wall = float(run.manifest.timings["wall_seconds"])
    shown = ", ".join(f"{r.phase} {r.share:.0%}" for r in table.head(top).itertuples())
    return f"time of the last invocation, {wall:.1f} s: {shown} (report.md: every phase)"


TIMINGS_TEXT = ("Seconds by phase of the invocation that last wrote this run (a resume or extension counts only "
                "itself); first_window includes tracing and compiling the step; other is what no phase claims "
                "(planning, the executor, waiting). With Ray, groups run side by side, so phases can add up to "
                "more than the wall time.")
