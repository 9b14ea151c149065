"""`initlab probe`: signal propagation at initialization, over seeds, against mean-field theory.

Every initializer × activation (× depth/width) combination of a config is built for several seeds
(the grid's seeds, or ``DEFAULT_SEEDS`` consecutive ones when the grid has a single seed), run
forward and backward once on the probe batch and measured layer by layer (``diagnostics``); the
singular values of its input–output Jacobian are computed on the first probe examples. Next to
each measurement stands the mean-field prediction (``analysis.theory``) with the finite-width band
in which a network of these widths lands with ≈95 % probability, so a deviation can be told from
noise. Flags compare the measured ratios with the band a signal-preserving net would show around 1.

MLP combinations of one shape are evaluated together as packed groups (the engine's model
classes), all seeds at once, so a 30-layer grid over 5 seeds takes seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from init_lab.analysis import theory
from init_lab.analysis.diagnostics import layer_rows
from init_lab.analysis.jacobian import Spectrum
from init_lab.catalog import defaults
from init_lab.catalog.initializers import BRANCH_SCALE
from init_lab.catalog.models import net_kind
from init_lab.config.grid import TrialSpec, expand
from init_lab.config.schema import SweepConfig

DEFAULT_SEEDS = 5  # seeds probed when the grid names only one
GROUP = 20  # trials evaluated together at most: measured fastest here (64: 2× slower, memory-bound)
BAND = 2.0  # band half-width in standard deviations of the log ratio (≈95 %)


@dataclass
class ProbeResult:
    layers: pd.DataFrame  # one row per combination × seed × hidden layer, theory per layer alongside
    summary: pd.DataFrame  # one row per combination: ratios over seeds, theory, band, flags
    spectra: pd.DataFrame  # one row per combination × seed × example × singular value
    source: str
    seeds: list[int]


def probe_seeds(config: SweepConfig, n_seeds: int | None = None) -> list[int]:
    """The grid's seeds; ``n_seeds`` consecutive ones from the first instead when given, or when the grid has
    a single seed (then ``DEFAULT_SEEDS``)."""
    first = config.grid.seed[0]
    if n_seeds is None:
        return list(config.grid.seed) if len(config.grid.seed) > 1 else list(range(first, first + DEFAULT_SEEDS))
    return list(range(first, first + n_seeds))


def combinations(config: SweepConfig, seeds: list[int]) -> list[TrialSpec]:
    """Every grid point × probed seed, in grid order."""
    grid = config.grid.model_copy(update={"seed": seeds})
    return expand(config.model_copy(update={"grid": grid}))


def label(spec: TrialSpec) -> str:
    return f"{spec.init_label} + {spec.act_label}" + "".join(f", {k}={v}" for k, v in spec.axes.items())


def run_probe(config: SweepConfig, batch: int = defaults.PROBE_SIZE, seeds: int | None = None,
              jacobian_examples: int = defaults.JACOBIAN_EXAMPLES, device: str | None = None) -> ProbeResult:
    """Probe the grid's combinations at initialization on ``device`` (default: the config's): what ``initlab
    probe`` prints and ``init_lab.probe`` returns."""
    from init_lab.engine.backend import setup_device, tf
    from init_lab.engine.data import load_prepared
    from init_lab.engine.nets import build_net
    from init_lab.run.interrupts import deferred

    setup_device(device or config.device, config.training.deterministic)

    chosen = probe_seeds(config, seeds)
    specs = combinations(config, chosen)
    prepared = load_prepared(config.dataset, specs[0].arch.family)
    x_probe, y_probe = prepared.probe_batch(batch)
    with deferred():  # Ctrl-C inside TensorFlow's calls can crash the process (run.interrupts): it waits
        x, y = tf.constant(x_probe), tf.constant(y_probe)
        x_lsuv = tf.constant(prepared.lsuv_batch(batch))  # LSUV rescales on training data, as in training
    input_sq = (np.asarray(x_probe, dtype=np.float64).reshape(len(x_probe), -1) ** 2).mean(axis=1)
    input_dim = int(np.prod(prepared.input_shape))
    predictions: dict[tuple, theory.Prediction] = {}
    rows, spectra, jacobians = [], [], {}
    for chunk in _chunks(specs):
        with deferred():
            net = build_net(net_kind(chunk[0].arch, True), chunk, prepared.input_shape, prepared.n_classes)
            net.lsuv(x_lsuv)
            signals = net.probe(x, y)
            singular = net.jacobian(x[:jacobian_examples]) if jacobian_examples > 0 else {}
        for s in chunk:
            key = (s.initializer, s.activation, s.arch, s.bias_std)
            if key not in predictions and (delta := theory.delta_orthogonal_equivalent(
                    s.initializer, s.arch, prepared.input_shape[-1])):
                # Xiao et al. 2018: a delta-orthogonal CNN (same padding, no pooling) propagates as an orthogonal MLP
                hidden, c_in, orthogonal = delta  # positions never mix: the length map runs per example and position
                per_position = (np.asarray(x_probe, dtype=np.float64) ** 2).reshape(-1, c_in).mean(axis=1)
                if per_position.size > POSITION_QUANTILES:  # its distribution by evenly spaced quantiles: the
                    # quadrature runs per value, and 256 images × 784 positions × every layer would not fit in memory
                    per_position = np.quantile(per_position, (np.arange(POSITION_QUANTILES) + 0.5) / POSITION_QUANTILES)
                predictions[key] = theory.predict(orthogonal, s.activation, hidden, c_in, prepared.n_classes,
                                                  per_position, "mlp", s.bias_std ** 2)
            if key not in predictions and not s.arch.plain:  # the residual length map, or why there is no theory
                predictions[key] = theory.predict_residual(s.initializer, s.activation, s.arch, input_dim, input_sq,
                                                           s.bias_std ** 2)
            if key not in predictions:  # σ_b² = the trial's bias_std²: the biases it was built with
                predictions[key] = theory.predict(s.initializer, s.activation, s.arch.hidden, input_dim,
                                                  prepared.n_classes, input_sq, s.arch.family, s.bias_std ** 2)
            rows += _layer_rows(s, signals[s.id], predictions[key])
            if s.id in singular:
                jacobians.setdefault(label(s), []).append(singular[s.id])
                spectra += _spectrum_rows(s, singular[s.id])
    layers = pd.DataFrame(rows)
    spectra_df = pd.DataFrame(spectra, columns=SPECTRA_COLUMNS)
    by_label = {label(s): predictions[(s.initializer, s.activation, s.arch, s.bias_std)] for s in specs}
    return ProbeResult(layers, _summary(layers, jacobians, by_label), spectra_df, prepared.source, chosen)


POSITION_QUANTILES = 2048  # a delta-orthogonal CNN's per-position input moments, summarized for its length map
SPECTRA_COLUMNS = ["combination", "seed", "example", "index", "singular_value", "log10_singular_value"]


def _spectrum_rows(spec: TrialSpec, spectrum: Spectrum) -> list[dict]:
    """probe_spectra.csv: every singular value, also as log10 (which stays finite where the value underflows);
    0 and −inf beyond the Jacobian's rank, empty where the computation does not resolve it (conv nets)."""
    log10 = spectrum.log_s / math.log(10.0)
    with np.errstate(over="ignore"):
        values = np.exp(spectrum.log_s)
    return [{"combination": label(spec), "seed": spec.seed, "example": e, "index": i, "singular_value": float(values[e, i]),
             "log10_singular_value": float(log10[e, i])}
            for e in range(log10.shape[0]) for i in range(log10.shape[1])]


def _chunks(specs: list[TrialSpec]) -> list[list[TrialSpec]]:
    """Same-shaped trials together (all seeds: no training, so no batch order to share), GROUP at most."""
    shapes: dict[tuple, list[TrialSpec]] = {}
    for s in specs:
        # widths, residual blocks, normalization; Fixup / SkipInit trials apart (their learned branch scalars)
        shapes.setdefault((s.arch, s.initializer.name if s.initializer.name in BRANCH_SCALE else None), []).append(s)
    return [part[i: i + GROUP] for part in shapes.values() for i in range(0, len(part), GROUP)]


def _layer_rows(spec: TrialSpec, signals, prediction: theory.Prediction) -> list[dict]:
    per_layer = {what: prediction.per_layer(what) for what in ("pre_std", "act_std", "grad_rms")}
    out = []
    for r in layer_rows(0, spec.activation.name, signals):
        i = r["layer"]
        out.append({
            "combination": label(spec), "initializer": spec.init_label, "activation": spec.act_label,
            **spec.axes, "seed": spec.seed, **r,
            **{f"theory_{what}_ratio": _nan(values[i] if i < len(values) else None) for what, values in per_layer.items()},
        })
    return out


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def _geo(values: pd.Series) -> tuple[float | None, float | None, float | None]:
    """Geometric mean, min and max of positive finite ratios (None when there are none)."""
    v = values.astype(float)
    v = v[np.isfinite(v) & (v > 0)]
    if v.empty:
        return None, None, None
    return float(np.exp(np.log(v).mean())), float(v.min()), float(v.max())


def _ratios(part: pd.DataFrame, column: str) -> pd.Series:
    """Per seed: the last hidden layer's value over the first one's."""
    def one(g: pd.DataFrame) -> float:
        g = g.sort_values("layer")
        first, last = float(g[column].iloc[0]), float(g[column].iloc[-1])
        return last / first if first != 0 and math.isfinite(first) and math.isfinite(last) else math.nan

    return part.groupby("seed").apply(one, include_groups=False)


def _noise_sd(prediction: theory.Prediction, widths: list[int]) -> float:
    """Standard deviation of a log std ratio from finite width alone: the theory's band where it applies,
    else the Gaussian-weights bound ½·√(Σ 2/n_l) (κ = 2, a linear layer)."""
    if prediction.propagation is not None:
        return prediction.propagation.band_sd
    return 0.5 * math.sqrt(sum(2.0 / n for n in widths[:-1]))


def _summary(layers: pd.DataFrame, jacobians: dict[str, list[Spectrum]],
             predictions: dict[str, theory.Prediction]) -> pd.DataFrame:
    out = []
    for combo, part in layers.groupby("combination", sort=False):
        p = predictions[combo]
        widths = [int(u) for u in part[part["seed"] == part["seed"].iloc[0]].sort_values("layer")["units"]]
        sd = _noise_sd(p, widths)
        row = {"combination": combo, "initializer": part["initializer"].iloc[0], "activation": part["activation"].iloc[0],
               "layers": len(widths), "seeds": part["seed"].nunique()}
        measured = {}
        for what, column in (("pre_std", "pre_std"), ("act_std", "act_std"), ("grad_rms", "grad_out_rms")):
            mean, lo, hi = _geo(_ratios(part, column))
            measured[what] = mean
            row |= {f"{what}_ratio": mean, f"{what}_ratio_min": lo, f"{what}_ratio_max": hi,
                    f"theory_{what}_ratio": p.ratio(what)}
        # one network's band, and the band of the geometric mean of this many independent networks (sd/√seeds):
        # the measured geometric mean is judged against the second, each seed against the first
        band_lo, band_hi = theory.band(p.ratio("pre_std"), sd, BAND)
        mean_lo, mean_hi = theory.band(p.ratio("pre_std"), sd, BAND, seeds=row["seeds"])
        per_seed = _ratios(part, "pre_std")
        inside = int(((per_seed >= band_lo) & (per_seed <= band_hi)).sum()) if band_lo is not None else None
        row |= {"band_lo": band_lo, "band_hi": band_hi, "mean_band_lo": mean_lo, "mean_band_hi": mean_hi,
                "seeds_in_band": inside, "noise_sd": sd,
                "vs_theory": _verdict(measured["pre_std"], mean_lo, mean_hi, p.reason),
                "theory_note": p.reason}
        if p.fixed is not None:
            row |= {"sigma_w2": p.fixed.sigma_w2, "q_star": p.fixed.q_star, "chi_1": p.fixed.chi_1, "phase": p.fixed.phase}
        row |= _spectrum(jacobians.get(combo, []), p, widths[-1])
        row["flags"] = "; ".join(_flags(part, measured, sd))
        out.append(row)
    return pd.DataFrame(out)


def _verdict(measured: float | None, lo: float | None, hi: float | None, reason: str) -> str:
    if lo is None or hi is None:
        return "no theory" if reason else "no prediction"
    if measured is None:
        return "no measurement"
    if measured < lo:
        return "below band"
    return "above band" if measured > hi else "within band"


def _spectrum(spectra: list[Spectrum], prediction: theory.Prediction, n_last: int) -> dict:
    """Over seeds × examples: the mean squared singular value (‖J‖²_F / n_L, as the theory), log10 of the condition
    number s_max/s_min (median, lowest, highest; ∞ where J is rank-deficient, NaN where not resolved), the
    rank (lowest) of the k = min(n_L, input) singular values, and the std of log10 s over the non-zero ones."""
    theory_ms = prediction.propagation.jacobian_ms if prediction.propagation is not None else None
    empty = {"jac_mean_sq": None, "jac_rank": None, "jac_k": None, "log10_condition": None, "log10_condition_min": None,
             "log10_condition_max": None, "jac_log10_s_std": None, "theory_jac_mean_sq": theory_ms}
    if not spectra:
        return empty
    log_s = np.concatenate([s.log_s for s in spectra])
    with np.errstate(over="ignore"):
        mean_sq = np.nansum(np.exp(2 * log_s), axis=1) / n_last
    cond = np.concatenate([s.log10_condition() for s in spectra])
    spread = np.concatenate([s.log10_spread() for s in spectra])
    rank = np.concatenate([s.rank for s in spectra])
    return empty | {
        "jac_mean_sq": float(mean_sq.mean()), "jac_rank": int(rank.min()), "jac_k": int(log_s.shape[1]),
        "log10_condition": float(np.median(cond)), "log10_condition_min": float(np.min(cond)),
        "log10_condition_max": float(np.max(cond)),
        "jac_log10_s_std": float(np.nanmean(spread)) if np.isfinite(spread).any() else None,
    }


def _flags(part: pd.DataFrame, measured: dict[str, float | None], sd: float) -> list[str]:
    flags = []
    for what, text in (("pre_std", "signal"), ("grad_rms", "gradients")):
        r = measured[what]
        if r is None or r == 0:
            continue
        if what == "grad_rms":  # gradients travel from the last layer to the first: first ÷ last
            r = 1.0 / r
            text = "gradients (first ÷ last)"
        lo, hi = theory.band(1.0, sd, BAND)  # what a net preserving the signal on average shows
        if r < lo:
            flags.append(f"{text} vanishing ×{r:.2g}")
        elif r > hi:
            flags.append(f"{text} exploding ×{r:.2g}")
    values = part[["pre_std", "act_std"]].to_numpy(dtype=float)
    if not np.isfinite(values).all():
        flags.append("non-finite")
    elif (part["act_std"] == 0).all():
        flags.append("no signal (symmetric)")
    for column, text in (("dead_frac", "dead units"), ("negative_frac", "units in the negative regime"),
                         ("saturated_frac", "saturated")):
        if column in part and part[column].notna().any() and part[column].max() > 0.5:
            flags.append(f"{part[column].max():.0%} {text}")
    return flags
