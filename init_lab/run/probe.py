"""`initlab probe`: signal propagation at initialization, no training.

Every initializer × activation (× depth/width) combination of a config is built (first seed),
run forward and backward once on the probe batch, and measured layer by layer (``diagnostics``),
next to the prediction of ``theory``. MLP combinations of one shape are evaluated together as one
packed group (the engine's model classes), so a 30-layer grid takes seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from init_lab.analysis.diagnostics import layer_rows
from init_lab.analysis.theory import predicted_std_ratio
from init_lab.catalog import defaults
from init_lab.config.grid import TrialSpec, expand
from init_lab.config.schema import SweepConfig
from init_lab.run.plan import plan_groups

VANISH, EXPLODE = 1e-2, 1e2  # last/first ratios beyond these are flagged


@dataclass
class ProbeResult:
    layers: pd.DataFrame  # one row per combination × hidden layer
    summary: pd.DataFrame  # one row per combination
    source: str


def combinations(config: SweepConfig) -> list[TrialSpec]:
    """One trial per grid point, ignoring seeds beyond the first."""
    first_seed = config.grid.seed[0]
    return [s for s in expand(config) if s.seed == first_seed]


def run_probe(config: SweepConfig, batch: int = defaults.PROBE_SIZE) -> ProbeResult:
    from init_lab.engine.backend import tf
    from init_lab.engine.data import load_prepared
    from init_lab.engine.nets import build_net

    specs = combinations(config)
    prepared = load_prepared(config.dataset, specs[0].arch.family)
    x = tf.constant(prepared.x_val[:batch])
    y = tf.constant(prepared.y_val[:batch])
    rows = []
    groups, _ = plan_groups(specs)
    for group in groups:
        net = build_net(group.net, group.specs, prepared.input_shape, prepared.n_classes)
        net.lsuv(x)
        signals = net.probe(x, y)
        for s in group.specs:
            theory = predicted_std_ratio(s.initializer, s.activation, s.arch.hidden) if s.arch.family == "mlp" else None
            for r in layer_rows(0, s.activation.name, *signals[s.id]):
                rows.append({
                    "combination": f"{s.init_label} + {s.act_label}" + "".join(f", {k}={v}" for k, v in s.axes.items()),
                    "initializer": s.init_label, "activation": s.act_label, **{k: v for k, v in s.axes.items()},
                    **r, "theory_pre_std_ratio": theory[r["layer"]] if theory else math.nan,
                })
    layers = pd.DataFrame(rows)
    return ProbeResult(layers, _summary(layers), prepared.source)


def _summary(layers: pd.DataFrame) -> pd.DataFrame:
    out = []
    for combo, part in layers.groupby("combination", sort=False):
        part = part.sort_values("layer")
        first, last = part.iloc[0], part.iloc[-1]
        act_ratio = _div(last["act_std"], first["act_std"])
        pre_ratio = _div(last["pre_std"], first["pre_std"])
        grad_ratio = _div(last["grad_out_rms"], first["grad_out_rms"])
        flags = []
        for label, r in (("activations", act_ratio), ("gradients", grad_ratio)):
            if r is not None and r < VANISH:
                flags.append(f"{label} vanish")
            if r is not None and r > EXPLODE:
                flags.append(f"{label} explode")
        if not math.isfinite(first["act_std"]) or not math.isfinite(last["act_std"]):
            flags.append("non-finite")
        dead = part["dead_frac"].max()
        if isinstance(dead, float) and dead > 0.5:
            flags.append(f"{dead:.0%} dead units")
        sat = part["saturated_frac"].max()
        if isinstance(sat, float) and sat > 0.5:
            flags.append(f"{sat:.0%} saturated")
        if first["act_std"] == 0 and last["act_std"] == 0:
            flags.append("no signal (symmetric)")
        out.append({
            "combination": combo, "initializer": first["initializer"], "activation": first["activation"],
            "layers": len(part), "act_std_first": first["act_std"], "act_std_last": last["act_std"],
            "act_std_last_over_first": act_ratio, "pre_std_last_over_first": pre_ratio,
            "theory_pre_std_last_over_first": last["theory_pre_std_ratio"],
            "grad_rms_last_over_first": grad_ratio, "flags": "; ".join(flags),
        })
    return pd.DataFrame(out)


def _div(a: float, b: float) -> float | None:
    if not (math.isfinite(a) and math.isfinite(b)) or b == 0:
        return None
    return a / b
