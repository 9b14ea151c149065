"""The commands' tables for the terminal (rich): ``initlab plan``'s trials and execution groups; ``initlab report``'s
pivots (coloured like the heatmaps), verdicts and leaderboard, the same leaderboard at the end of a sweep, and two
runs side by side; ``initlab probe``'s and ``initlab theory``'s tables.
"""

from __future__ import annotations

import math
from typing import Any

from rich.table import Table
from rich.text import Text

from init_lab.catalog.models import NetKind
from init_lab.config.grid import TrialSpec
from init_lab.console.styles import STATUS_STYLE, VERDICT_STYLE, heat_style
from init_lab.engine.events import Group
from init_lab.report.colours import shading
from init_lab.report.render import CELLS_TEXT, DIGITS, cell, verdict_lines
from init_lab.report.tables import facets, fmt, matrix, value_label
from init_lab.report.tuned import choice_text, choices_frame
from init_lab.run.capacity import format_bytes
from init_lab.run.memory import MemoryPlan
from init_lab.runschema.axes import AXES, NAMES


def plan_table(trials: list[TrialSpec], limit: int | None = None) -> Table:
    swept = [a for a in NAMES if any(a in s.axes for s in trials)]  # in grid order, as in the trial ids
    table = Table(title=f"{len(trials)} trials", show_lines=False)
    for col in ["#", "trial id", "initializer", "activation", *swept, "seed", "model"]:
        table.add_column(col, overflow="fold")
    shown = trials if limit is None else trials[:limit]
    for s in shown:
        table.add_row(
            str(s.index), s.id, s.init_label, s.act_label, *(fmt(s.axes[k], 6) for k in swept), str(s.seed), s.arch.label
        )
    if limit is not None and len(trials) > limit:
        table.add_row("…", f"{len(trials) - limit} more", *[""] * (5 + len(swept)))
    return table


def _index_ranges(indices: list[int], width: int = 40) -> str:
    """[0, 1, 2, 3, 8] → '0–3, 8', cut to about ``width`` characters."""
    runs: list[list[int]] = []
    for i in sorted(indices):
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    text = ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}–{r[-1]}" for r in runs)
    return text if len(text) <= width else text[: width - 1].rsplit(",", 1)[0] + ", …"


def groups_table(groups: list[Group], memory: MemoryPlan, limit: int | None = None) -> Table:
    """The execution groups of a plan: members (trial numbers), settings, estimated memory against the budget."""
    table = Table(title=f"{len(groups)} execution group(s)", show_lines=False, caption_justify="left")
    for col in ["group", "trials", "members (#)", "model", "batch", "optimizer", "est. memory"]:
        table.add_column(col, overflow="fold", justify="right" if col in ("trials", "batch", "est. memory") else "left")
    over = {g.id for g in groups if not memory.fits(g)}
    for g in groups if limit is None else groups[:limit]:
        spec, too_large = g.specs[0], g.id in over
        table.add_row(
            g.id, str(len(g.specs)), _index_ranges([s.index for s in g.specs]),
            spec.arch.label + (" packed" if g.net == NetKind.PACKED_MLP else ""), str(spec.train.batch_size),
            spec.train.optimizer, format_bytes(memory.group_bytes(g)) + (" over budget" if too_large else ""),
            style="bold red" if too_large else None,
        )
    if limit is not None and len(groups) > limit:
        table.add_row("…", f"{len(groups) - limit} more", *[""] * 5)
    shared = f"data {format_bytes(memory.data_bytes)}" + (", its NumPy copy and TensorFlow's runtime" if memory.host else "")
    table.caption = (f"memory budget {format_bytes(memory.budget)} ({memory.source}); shared by every group: {shared}"
                     f" = {format_bytes(memory.fixed_bytes)}; a group may use {format_bytes(max(memory.group_budget, 0))}"
                     + (f"; {len(over)} over budget alone (they run anyway)" if over else ""))
    return table


# --- report tables -------------------------------------------------------------------------


def pivot_tables(run, verdicts) -> list[Table]:
    """The initializer × activation pivot(s) of ``verdicts.cells`` as rich tables coloured like the heatmaps (the
    gap to the group's best, ``colours.shading``; cells at chance or without a value dim, apart)."""
    table = verdicts.cells
    shade = shading(table, verdicts.higher)
    seeds = f", mean ± std over {run.n_seeds} seeds" if run.n_seeds > 1 else ""
    out = []
    for title, part in facets(run, table):
        texts = matrix(part.assign(text=part.apply(lambda r: " ".join(filter(None, (cell(r), choice_text(run, r)))),
                                                   axis=1)), run, "text")
        position = shade.matrix(run, part)
        t = Table(title=f"{verdicts.label}{seeds}" + (f" — {title}" if title else ""), show_lines=True,
                  caption=Text(CELLS_TEXT), caption_justify="left")
        t.add_column("initializer \\ activation", style="bold")
        for a in texts.columns:
            t.add_column(a, justify="center")
        for init in texts.index:
            row = []
            for a in texts.columns:
                v = position.at[init, a]
                text = texts.at[init, a] if isinstance(texts.at[init, a], str) else "—"
                row.append(Text(text, style="dim" if v is None or not math.isfinite(v) else heat_style(v)))
            t.add_row(Text(init), *row)
        out.append(t)
    return out


def verdicts_lines(verdicts) -> list[Text]:
    """The verdicts section for the terminal: a heading, what was done (once), the comparisons in words."""
    lines = [Text(f"verdicts over seeds ({verdicts.label})", style="bold")]
    lines += [Text(note, style="dim") for note in verdicts.notes]
    for line in verdict_lines(verdicts):
        style = "green" if "not distinguishable" in line else "bold" if "distinguishable" in line else "dim"
        lines.append(Text("  " + line, style=style))
    return lines


SHORT_HEADERS = {
    "best_val_accuracy": "best val acc", "best_epoch": "epoch", "test_accuracy": "test acc",
    "final_loss": "final loss", "final_val_loss": "final val loss", "final_val_accuracy": "final val acc",
    "wall_seconds": "time share (s)", "initial_loss": "init loss",
    "group_seconds": "time (s)", "packed_with": "trained with", "vs_best": "vs best",
    **{axis.name: axis.header for axis in AXES},
}


def report_leaderboard_table(board, metric: str, label: str, limit: int | None = None) -> Table:
    """The report's leaderboard (a pandas frame) as a compact rich table."""
    t = Table(title=f"leaderboard by {label}")
    wanted = ["rank", "initializer", "activation", *NAMES, "seed", "status", "vs_best", "initial_loss",
              "best_val_accuracy", "best_epoch", "test_accuracy", "final_loss", metric, "group_seconds", "packed_with"]
    cols = [c for c in dict.fromkeys(wanted) if c in board.columns]
    for c in cols:
        t.add_column(SHORT_HEADERS.get(c, c), justify="left" if c in ("initializer", "activation", "status", "vs_best")
                     else "right",
                     style="bold" if c == metric else None)
    rows = board if limit is None else board.head(limit)
    for _, r in rows.iterrows():
        t.add_row(*[
            Text(str(r[c]), style=STATUS_STYLE.get(str(r[c]), "")) if c == "status"
            else Text(str(r[c]), style=VERDICT_STYLE.get(str(r[c]), "")) if c == "vs_best"
            else Text("—" if _isnan(r[c]) else fmt(r[c], DIGITS.get(c, 4)))
            for c in cols
        ])
    if limit is not None and len(board) > limit:
        t.caption = f"{len(board) - limit} more rows in leaderboard.csv"
    return t


def _isnan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def comparison_table(table, name_a: str, name_b: str, label: str) -> Table:
    """Two runs side by side: the metric in A and in B and the difference, per shared trial."""
    t = Table(title=f"{label}: A = {name_a}, B = {name_b}")
    keys = [c for c in table.columns if c not in ("a", "b", "delta", "status_a", "status_b", "in")]
    for c in [*keys, "A", "B", "B − A", "status A", "status B", "in"]:
        t.add_column(c, justify="left" if c in ("initializer", "activation", "in", "status A", "status B") else "right")
    deltas = table["delta"].abs()
    for _, r in table.iterrows():
        d = r["delta"]
        style = "" if _isnan(d) or not deltas.max() else ("green" if d > 0 else "red" if d < 0 else "")
        t.add_row(
            *[Text(fmt(r[k])) for k in keys], Text(fmt(r["a"]) if not _isnan(r["a"]) else "—"),
            Text(fmt(r["b"]) if not _isnan(r["b"]) else "—"),
            Text(f"{d:+.4f}" if not _isnan(d) else "—", style=style),
            Text(str(r["status_a"]) if isinstance(r["status_a"], str) else "—"),
            Text(str(r["status_b"]) if isinstance(r["status_b"], str) else "—"), Text(str(r["in"])),
        )
    shared = int((table["in"] == "both").sum())
    t.caption = f"{shared} shared trials; mean B − A = {table['delta'].mean():+.4f}" if shared else "no shared trials"
    return t


def _g(x) -> str:
    return "—" if x is None or _isnan(x) else f"{x:.3g}"


def probe_table(summary) -> Table:
    """One row per combination: measured ratios over seeds, the mean-field theory with its band, the Jacobian
    spectrum's summary, the flags."""
    t = Table(title="signal propagation at initialization (last hidden layer ÷ first, over seeds)")
    for col in ["initializer", "activation", "pre std ratio [min–max]", "theory [band]", "vs theory",
                "grad ratio (theory)", "Jacobian ⟨s²⟩ (theory)", "log10 s std", "log10 cond", "flags"]:
        t.add_column(col, justify="left" if col in ("initializer", "activation", "vs theory", "flags") else "right")
    for _, r in summary.iterrows():
        theory = (f"{_g(r['theory_pre_std_ratio'])} [{_g(r['band_lo'])}–{_g(r['band_hi'])}]"
                  if r["band_lo"] is not None and not _isnan(r["band_lo"]) else "—")
        verdict_style = {"within band": "green", "below band": "yellow", "above band": "yellow"}.get(r["vs_theory"], "dim")
        inside = r.get("seeds_in_band")
        verdict = str(r["vs_theory"]) + (f" ({int(inside)}/{int(r['seeds'])} seeds)"
                                         if inside is not None and not _isnan(inside) else "")
        t.add_row(
            Text(str(r["initializer"])), Text(str(r["activation"])),
            Text(f"{_g(r['pre_std_ratio'])} [{_g(r['pre_std_ratio_min'])}–{_g(r['pre_std_ratio_max'])}]"),
            Text(theory), Text(verdict, style=verdict_style),
            Text(f"{_g(r['grad_rms_ratio'])} ({_g(r['theory_grad_rms_ratio'])})"),
            Text(f"{_g(r['jac_mean_sq'])} ({_g(r['theory_jac_mean_sq'])})"), Text(_g(r.get("jac_log10_s_std"))),
            Text(_condition(r)),
            Text(r["flags"] or "ok", style="bold red" if r["flags"] else "green"),
        )
    notes = sorted({str(n) for n in summary["theory_note"] if isinstance(n, str) and n})
    seeds = int(summary["seeds"].max()) if len(summary) else 0
    t.caption = Text(
        f"ratios: geometric mean over {seeds} seeds [min–max]; theory: mean-field prediction (length map from the "
        "data's input second moment) [≈95 % band of one network of these widths]; vs theory: the geometric mean "
        f"against the band of a geometric mean of {seeds} networks (sd/√{seeds}), and how many seeds fall in the "
        "one-network band; grad: RMS of ∂L/∂activation; s: singular values of the input–output Jacobian ∂z_L/∂x, "
        "in float64 by QR through the layers; log10 cond: log10(s_max/s_min), median [lowest–highest] over seeds × "
        "examples, ∞ where the Jacobian is rank-deficient (units with φ′ = 0: ReLU units that are off, units "
        "saturated beyond float64), 'not resolved' for a conv net's float32 Jacobian beyond 10⁵; flags: outside the "
        "band one signal-preserving net shows around 1 (where no theory applies: the Gaussian-weights band with "
        "κ = 2, a heuristic)"
        + "".join(f"\nno theory: {n}" for n in notes))
    return t


def _condition(r) -> str:
    """The Jacobian's log10 condition number for the probe table: median [range], or why there is none."""
    value, k = r.get("log10_condition"), r.get("jac_k")
    if value is None or _isnan(value):
        return "—" if k is None or _isnan(k) else "not resolved"
    if math.isinf(value):
        return f"∞ (rank {int(r['jac_rank'])}/{int(k)})"
    low, high = r["log10_condition_min"], r["log10_condition_max"]
    if math.isinf(high):
        return f"{_g(value)} [{_g(low)}–∞]"
    return f"{_g(value)} [{_g(low)}–{_g(high)}]"


def theory_table(rows) -> Table:
    """`initlab theory`: one row per initializer × activation: σ_w², fixed point, χ₁, depth scales, ratios."""
    t = Table(title="mean-field theory at initialization (hidden-layer stack)")
    for col in ["initializer", "activation", "σ_w²", "critical σ_w²", "q*", "χ₁", "phase", "ξ_q", "ξ_c",
                "pre std ratio", "grad RMS ratio", "note"]:
        t.add_column(col, justify="left" if col in ("initializer", "activation", "phase", "note") else "right")
    edges = {}  # activation → why its edge of chaos is a boundary (q* → ∞) or does not exist
    for _, r in rows.iterrows():
        kind = r.get("critical_kind", "critical")
        critical = _g(r["critical_sigma_w2"]) + (" (q*→∞)" if kind == "boundary" else "")
        if kind != "critical" and r.get("critical_note"):
            edges[str(r["activation"])] = f"{kind}: {r['critical_note']}"
        t.add_row(str(r["initializer"]), str(r["activation"]), _g(r["sigma_w2"]), critical,
                  _g(r["q_star"]), _g(r["chi_1"]), str(r["phase"] or "—"), _g(r["xi_q"]), _g(r["xi_c"]),
                  _g(r["pre_std_ratio"]), _g(r["grad_rms_ratio"]), str(r["note"] or ""))
    t.caption = ("σ_w² = fan_in·Var(W) of the last hidden layer (LSUV: after its rescaling); critical σ_w²: χ₁ = 1 at the given σ_b², from the input's q; ξ: depth scales "
                 "(∞ at criticality, — where none exists); ratios: last hidden layer ÷ first over the config's depth"
                 + "".join(f"\nedge of chaos, {act}: {text}" for act, text in edges.items()))
    return t


def tuned_table(run) -> Table:
    """A tuned run's choices (``report.tuned``): per cell the chosen value, its validation score and the runner-up,
    with the selection rules as the caption."""
    t = run.tuning
    frame = choices_frame(run)
    table = Table(title=f"each cell at its best {t.axis} (chosen by {t.by})", caption=Text(" ".join(t.notes)),
                  caption_justify="left")
    for c in frame.columns:
        table.add_column(SHORT_HEADERS.get(c, c), justify="left" if c in ("initializer", "activation") else "right")
    for _, r in frame.iterrows():
        table.add_row(*[Text("—" if r[c] is None or _isnan(r[c]) or r[c] == "" else
                             value_label(r[c]) if c.startswith(("chosen", "runner-up")) else fmt(r[c]))
                        for c in frame.columns])
    return table
