"""What theory predicts for one network at initialization — or why nothing applies (no TensorFlow here).

Turns an initializer × activation × shape into mean-field terms (``meanfield``): each layer's
Var(W) from the initializer registry (``weight_variance``, the one place those laws live), biases at
0 as initlab builds them, and the data's per-example input second moment. The answer is a
:class:`Prediction` with the per-layer propagation, or a reason where no theory applies: conv nets
(the mean-field here is for fully-connected stacks), constant weights (not zero-mean), zero weights
(every pre-activation is 0, so no ratio exists).

LSUV (Mishkin & Matas 2016) is an orthogonal init whose eligible hidden layers are rescaled to unit
pre-activation variance on data; the prediction follows that: the length map runs on the
orthogonal variances and is renormalized to 1 at every rescaled layer.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from init_lab.analysis import meanfield as mf
from init_lab.catalog.initializers import INITIALIZERS, weight_variance
from init_lab.catalog.registry import Choice

BIAS_VAR = 0.0  # σ_b² without model.bias_std: initlab initialises every bias to 0 unless told otherwise
LSUV_MIN_WIDTH = 32  # used when the lsuv entry carries no min_width parameter


@dataclass(frozen=True)
class Prediction:
    """Mean-field prediction for one network: ``propagation`` and ``fixed``, or ``reason`` why none."""

    propagation: mf.Propagation | None = None
    fixed: mf.FixedPoint | None = None  # of a stack of the last hidden layer (its σ_w² after any LSUV rescaling)
    reason: str = ""

    def ratio(self, what: str) -> float | None:
        """Predicted last/first hidden-layer ratio of 'pre_std', 'act_std' or 'grad_rms'."""
        p = self.propagation
        if p is None:
            return None
        if what == "grad_rms":
            return math.sqrt(p.grad_ms[-1] / p.grad_ms[0]) if p.grad_ms[0] > 0 else None
        return p.ratio(getattr(p, what))

    def per_layer(self, what: str) -> list[float | None]:
        """Predicted ratio of each hidden layer to the first one."""
        p = self.propagation
        if p is None:
            return []
        if what == "grad_rms":
            values = np.sqrt(p.grad_ms)
        else:
            values = getattr(p, what)
        first = float(values[0])
        return [float(v) / first if first > 0 and math.isfinite(first) else None for v in values]


def _variance(init: Choice, shape: tuple[int, int], act: Choice | None) -> float | None:
    if init.name == "lsuv":
        return weight_variance(INITIALIZERS.resolve({"name": "orthogonal", "gain": 1.0}), shape)
    if INITIALIZERS.entries[init.name].needs_activation:  # matched: σ_w² = 1/E[φ(z)²] of the trial's activation
        return None if act is None else weight_variance(init, shape, mf.matched_sigma_w2(mf.phi(act)))
    return weight_variance(init, shape)


def layers(init: Choice, hidden: tuple[int, ...], input_dim: int, n_classes: int,
           act: Choice | None = None, bias_var: float = BIAS_VAR) -> tuple[list[mf.NetLayer], mf.NetLayer] | str:
    """The mean-field layers of an MLP, or the reason there are none (``act``: the trial's activation, which
    an activation-matched initializer depends on; ``bias_var``: σ_b² of every layer's biases, model.bias_std²)."""
    widths = [input_dim, *hidden, n_classes]
    min_width = init.kwargs.get("min_width", LSUV_MIN_WIDTH)
    orthogonal = INITIALIZERS.entries[init.name].orthogonal  # the finite-width band differs (meanfield._log_variance)
    out = []
    for fan_in, width in zip(widths[:-1], widths[1:]):
        var = _variance(init, (fan_in, width), act)
        if var is None:
            if init.name == "constant":
                return "constant weights are not zero-mean: mean-field theory does not apply"
            return f"no variance law for initializer '{init.name}'"
        out.append(mf.NetLayer(fan_in, width, var, bias_var, renormalize=init.name == "lsuv" and width >= min_width,
                               tolerance=init.kwargs.get("tol", 0.0), orthogonal=orthogonal))
    if all(layer.weight_var == 0.0 for layer in out):
        return "zero weights: every pre-activation is 0, so no ratio exists"
    return out[:-1], out[-1]


def predict(init: Choice, act: Choice, hidden: tuple[int, ...], input_dim: int, n_classes: int,
            input_sq: np.ndarray, family: str = "mlp", sigma_b2: float = BIAS_VAR) -> Prediction:
    """Prediction for an MLP with these hidden widths, from each probe example's mean of x² (``input_sq``), its
    biases drawn with variance ``sigma_b2`` (the trial's bias_std²)."""
    if family != "mlp":
        return Prediction(reason="the mean-field theory here is for fully-connected nets: no prediction for conv nets")
    built = layers(init, hidden, input_dim, n_classes, act, sigma_b2)
    if isinstance(built, str):
        return Prediction(reason=built)
    stack, output = built
    if stack[0].weight_var == 0.0:
        return Prediction(reason="zero first-layer weights: no signal reaches the hidden layers")
    f = mf.phi(act)
    prop = mf.propagate(f, stack, output, input_sq)
    fixed = mf.fixed_point(f, float(prop.sigma_w2[-1]), stack[-1].bias_var, q0=float(prop.q[0].mean()))
    return Prediction(propagation=prop, fixed=fixed)


def no_theory_reason(arch) -> str:
    """Why no mean-field map here describes a normalized net or a residual CNN (an ``Architecture``)."""
    if arch.normalization != "none":
        return (f"{arch.normalization} rescales every layer by statistics of the data; no published "
                "mean-field result for it is implemented here")
    return "the mean-field theory here is for fully-connected stacks: no prediction for conv nets"


def delta_orthogonal_equivalent(init: Choice, arch, c_in: int) -> tuple[tuple[int, ...], int, Choice] | None:
    """A plain configurable CNN under delta-orthogonal weights, same padding and no pooling, as the fully-connected net
    it propagates like (Xiao et al. 2018, §2.3–2.4: only the centre tap is non-zero, so every position sees an
    orthogonal c_in × c_out map): its channels as widths, the input's channels ``c_in``, and orthogonal(gain). None
    otherwise."""
    from init_lab.catalog.models import Conv, GlobalAvgPool

    if init.name != "delta_orthogonal" or arch.family != "cnn" or not arch.plain or not arch.stack:
        return None
    if not all(isinstance(layer, GlobalAvgPool) or (isinstance(layer, Conv) and layer.padding == "same")
               for layer in arch.stack):
        return None
    return arch.units, c_in, INITIALIZERS.resolve({"name": "orthogonal", "gain": init.kwargs.get("gain", 1.0)})


def predict_residual(init: Choice, act: Choice, arch, input_dim: int, input_sq: np.ndarray,
                     sigma_b2: float = BIAS_VAR) -> Prediction:
    """The residual length map (``analysis.residual``) of a residual MLP without normalization: per-layer
    pre-activation second moments from each probe example's mean of x². No gradient or Jacobian prediction; the
    finite-width band is the Gaussian heuristic (log-variance Σ 2/n_l), not a derived one."""
    from init_lab.analysis.residual import residual_length_map
    from init_lab.catalog.initializers import base_choice
    from init_lab.catalog.models import fixup_multiplier

    if arch.normalization != "none" or arch.family != "mlp":
        return Prediction(reason=no_theory_reason(arch))
    widths = [input_dim, *arch.hidden]
    sigma_w2 = []
    for layer, (fan_in, width) in enumerate(zip(widths[:-1], widths[1:])):
        var = _variance(base_choice(init), (fan_in, width), act)
        if var is None:
            return Prediction(reason=f"no variance law for initializer '{init.name}'")
        sigma_w2.append(fan_in * var * (fixup_multiplier(arch, layer) ** 2 if init.name == "fixup" else 1.0))
    if sigma_w2[0] == 0.0:
        return Prediction(reason="zero first-layer weights: no signal reaches the hidden layers")
    projection = {b.index: b.projection[0] * _variance(base_choice(init), b.projection, act)
                  for b in arch.blocks if b.projection}
    gate = 0.0 if init.name == "skipinit" else 1.0
    f = mf.phi(act)
    q0 = sigma_w2[0] * np.asarray(input_sq, dtype=np.float64) + sigma_b2
    Q = residual_length_map(f, [(b.first, b.last) for b in arch.blocks], sigma_w2, sigma_b2, projection, gate, q0)
    sq = lambda x: f(x) ** 2  # noqa: E731
    act_m = mf.expect(f, Q).mean(axis=1)
    act_s2 = mf.expect(sq, Q).mean(axis=1)
    nan = np.full(len(Q), np.nan)
    heuristic = np.cumsum([0.0] + [2.0 / n for n in arch.hidden[:-1]])  # Var log(q̂_l/q̂_1): the Gaussian heuristic
    prop = mf.Propagation(q=Q, pre_std=np.sqrt(Q.mean(axis=1)), act_mean=act_m,
                          act_std=np.sqrt(np.maximum(act_s2 - act_m**2, 0.0)), grad_ms=nan, jacobian_ms=float("nan"),
                          log_var=heuristic, sigma_w2=np.array(sigma_w2))
    return Prediction(propagation=prop)


def band(mean: float | None, sd: float, width: float = 2.0, seeds: int = 1) -> tuple[float | None, float | None]:
    """Where one finite-width network's std ratio falls: log-normal around the mean-field ``mean`` with
    log-standard-deviation ``sd``, so its median is mean·exp(−sd²) (the mean of the *squared* ratio is the
    mean-field one; Hanin & Rolnick 2018) and the band is median·exp(∓width·sd). With ``seeds`` > 1: where the
    geometric mean of that many independent networks falls, the same median with sd/√seeds."""
    if mean is None or not math.isfinite(mean) or mean <= 0:
        return None, None
    median = mean * math.exp(-sd * sd)
    half = width * sd / math.sqrt(max(seeds, 1))
    return median * math.exp(-half), median * math.exp(half)


# Mean of x² per input feature, over the training set, of [0, 1]-scaled pixels (measured once on the real
# files: MNIST 60k 0.1120; the bundled sample 0.1127; digits' 1,438 training images 0.2342). CIFAR-10's is
# not measured here (no copy of it on the machines that built this): 0.2874 is Σ_c (μ_c² + σ_c²) / 3 from its
# published per-channel training-set means 0.4914, 0.4822, 0.4465 and stds 0.2470, 0.2435, 0.2616.
# `initlab theory` starts the length map there without loading data; other inputs: pass --input-moment.
PIXEL_SECOND_MOMENT = {"mnist": 0.1120, "mnist_sample": 0.1127, "digits": 0.2342, "cifar10": 0.2874}


def input_moment(dataset: str, standardize: bool = False) -> tuple[float, str]:
    """The first layer's input second moment to assume without data, and where it comes from."""
    if standardize:
        return 1.0, "standardized inputs (mean 0, variance 1 per pixel, or per channel of colour images)"
    if dataset in PIXEL_SECOND_MOMENT:
        return PIXEL_SECOND_MOMENT[dataset], f"mean of x² of {dataset}'s [0, 1] pixels"
    return 1.0, "assumed 1.0 (pass --input-moment for this dataset)"


def stack_tables(config, moment: float, sigma_b2: float | None = None):
    """`initlab theory`: per initializer × activation (× shape, × σ_b) of ``config`` (a SweepConfig), the mean-field
    figures of its MLP, and per layer the predicted q_l, activation std and gradient second moment.

    σ_b² is each trial's own bias_std² (model.bias_std or its grid axis; 0 where the config says nothing, as its
    biases are), unless ``sigma_b2`` is given (``--sigma-b2``: a what-if for every row)."""
    import pandas as pd

    from init_lab.config.grid import expand

    rows, per_layer, seen, critical = [], [], set(), {}
    for spec in expand(config):
        sb2 = spec.bias_std ** 2 if sigma_b2 is None else sigma_b2
        key = (spec.initializer, spec.activation, spec.arch, sb2)
        if key in seen:
            continue
        seen.add(key)
        f = mf.phi(spec.activation)
        if (spec.activation, sb2) not in critical:
            critical[spec.activation, sb2] = mf.edge_of_chaos(f, sb2, q0=max(moment, 1e-12))
        edge = critical[spec.activation, sb2]  # a "boundary" edge (q* → ∞) and "none" say so: they are no critical point
        row = {"initializer": spec.init_label, "activation": spec.act_label, **spec.axes,
               "sigma_b2": sb2, "critical_sigma_w2": edge.sigma_w2, "critical_kind": edge.kind, "critical_note": edge.note,
               "sigma_w2": None, "q_star": None, "chi_1": None,
               "phase": None, "xi_q": None, "xi_c": None, "pre_std_ratio": None, "grad_rms_ratio": None, "note": ""}
        # the MLP's first layer sees the dataset's image flattened: 784 values for MNIST, 3072 for CIFAR-10
        if not spec.arch.plain:  # a residual MLP: its length map (no fixed point, no gradient law); else no theory
            res = predict_residual(spec.initializer, spec.activation, spec.arch, math.prod(config.dataset.image_shape),
                                   np.array([moment]), sb2)
            rows.append(row | ({"pre_std_ratio": res.ratio("pre_std"), "note": "residual length map (Yang & "
                                "Schoenholz 2017; m-layer branches: analysis/residual.py)"}
                               if res.propagation is not None else {"note": res.reason}))
            continue
        built = layers(spec.initializer, spec.arch.hidden, math.prod(config.dataset.image_shape), config.dataset.classes,
                       spec.activation) \
            if spec.arch.family == "mlp" else \
            "conv nets: the mean-field theory here is for fully-connected stacks"
        if isinstance(built, str):
            rows.append(row | {"note": built})
            continue
        stack, output = built
        stack = [dataclasses.replace(la, bias_var=sb2) for la in stack]
        output = dataclasses.replace(output, bias_var=sb2)
        prop = mf.propagate(f, stack, output, np.array([moment]))
        fp = mf.fixed_point(f, float(prop.sigma_w2[-1]), sb2, q0=float(prop.q[0, 0]))
        pred = Prediction(prop, fp)
        row |= {"sigma_w2": fp.sigma_w2, "q_star": fp.q_star, "chi_1": fp.chi_1, "phase": fp.phase, "xi_q": fp.xi_q,
                "xi_c": fp.xi_c, "pre_std_ratio": pred.ratio("pre_std"), "grad_rms_ratio": pred.ratio("grad_rms")}
        rows.append(row)
        name = f"{spec.init_label} + {spec.act_label}" + "".join(f", {k}={v}" for k, v in spec.axes.items())
        for i in range(len(stack)):
            per_layer.append({"combination": name, "initializer": spec.init_label, "activation": spec.act_label,
                              "layer": i, "q": float(prop.q[i, 0]), "act_std": float(prop.act_std[i]),
                              "grad_ms": float(prop.grad_ms[i])})
    return pd.DataFrame(rows), pd.DataFrame(per_layer)
