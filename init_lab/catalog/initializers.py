"""Weight initializers, with the formulas of the papers (DESIGN §4).

fan_in / fan_out of a Dense kernel (n_in, n_out) are n_in / n_out; of a Conv2D
kernel (k_h, k_w, c_in, c_out) they are k_h·k_w·c_in / k_h·k_w·c_out (Keras
computes them the same way). Biases start at 0, or, with ``model.bias_std`` = σ_b > 0, are drawn N(0, σ_b²)
from :func:`bias_seed` (the engine draws them).

Entries are data: each names the Keras initializer class and its arguments
(:func:`keras_spec`); only the engine turns that into a Keras object.

The "*_normal" variance-scaling initializers draw, as Keras does, from a normal
truncated at ±2σ' with σ' = σ/0.8796 so that the *variance* is exactly the one in
the formula column. ``random_normal`` is a plain, untruncated Gaussian.

Each entry also carries the variance of one weight as a function of its parameters and the kernel
shape; :func:`weight_variance` is the one place anything (the theory, the tests) reads it from.

``matched`` depends on the activation of the trial as LSUV depends on its data: its σ_w² = 1/E[φ(z)²] is
computed by the mean-field quadrature (``analysis.meanfield.matched_sigma_w2``), above this layer, and
passed in to :func:`keras_spec` and :func:`weight_variance` by the engine and the theory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from init_lab.catalog.registry import Choice, Entry, Param, Registry

Params = Mapping[str, float]

# Named gains for orthogonal (and any other gain parameter), the values of PyTorch's
# torch.nn.init.calculate_gain: the factor that keeps the second moment through the activation
GAINS: dict[str, float] = {
    "linear": 1.0,
    "sigmoid": 1.0,
    "tanh": 5.0 / 3.0,
    "relu": math.sqrt(2.0),
    "leaky_relu": math.sqrt(2.0 / (1 + 0.01**2)),  # negative slope 0.01, initlab's (and PyTorch's) default
    "selu": 3.0 / 4.0,
}


def _variance_scaling(scale: float | Callable[[Params], float], mode: str, distribution: str) -> dict[str, Any]:
    """Entry fields ``build`` and ``variance`` of a Keras VarianceScaling initializer: Var = scale/n,
    n = fan_in, fan_out or their mean (``mode``); ``scale`` may depend on the parameters (He's ``a``)."""
    scale_of = scale if callable(scale) else (lambda params: scale)

    def spec(params: Params) -> tuple[str, dict[str, Any]]:
        return "VarianceScaling", {"scale": scale_of(params), "mode": mode, "distribution": distribution}

    def variance(params: Params, shape: tuple[int, ...]) -> float:
        fan_in, fan_out = fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        return scale_of(params) / n

    return {"build": spec, "variance": variance}


def _he_scale(params: Params) -> float:
    """He et al. 2015 eq. 15 (the PReLU paper): Var = 2/((1 + a²)·n), a the negative slope (0: ReLU)."""
    return 2.0 / (1.0 + params["a"] ** 2)


def _random_normal(params: Params) -> tuple[str, dict[str, Any]]:
    return "RandomNormal", {"mean": 0.0, "stddev": params["stddev"]}


def _random_uniform(params: Params) -> tuple[str, dict[str, Any]]:
    return "RandomUniform", {"minval": -params["limit"], "maxval": params["limit"]}


def _orthogonal(params: Params) -> tuple[str, dict[str, Any]]:
    return "Orthogonal", {"gain": params.get("gain", 1.0)}


def _orthogonal_variance(params: Params, shape: tuple[int, ...]) -> float:
    """Keras flattens the kernel to (prod(shape[:-1]), shape[-1]) and makes that matrix's columns (or
    rows) orthonormal: its squares sum to gain²·min(rows, cols), so E[W²] = gain²/max(rows, cols).
    For a Dense kernel that is gain²/max(fan_in, fan_out); for a conv kernel (kh, kw, cin, cout) it is
    gain²/max(kh·kw·cin, cout), not anything of :func:`fans`."""
    rows, cols = math.prod(shape[:-1]), shape[-1]
    return params.get("gain", 1.0) ** 2 / max(rows, cols)


MATCHED_BASES = {"normal": 0.0, "uniform": 1.0}  # matched's `base`: how the draw is shaped (Keras' names below)
_MATCHED_DISTRIBUTIONS = {0.0: "truncated_normal", 1.0: "uniform"}


def _matched(params: Params, sigma_w2: float) -> tuple[str, dict[str, Any]]:
    """Var = σ_w²/fan_in with σ_w² = 1/E[φ(z)²] of the trial's activation, as a Keras VarianceScaling."""
    return "VarianceScaling", {"scale": sigma_w2, "mode": "fan_in", "distribution": _MATCHED_DISTRIBUTIONS[params["base"]]}


def _matched_variance(params: Params, shape: tuple[int, ...], sigma_w2: float) -> float:
    return sigma_w2 / fans(shape)[0]


# variance_scaling's `mode` and `distribution`: choices of names, stored as numbers (registry.Param's names_only)
VS_MODES = {"fan_in": 0.0, "fan_out": 1.0, "fan_avg": 2.0}
# "normal" is a plain Gaussian (Keras' "untruncated_normal", accepted too), the weights of the mean-field papers;
# "truncated_normal" is Keras' own default: a normal cut at ±2σ' with σ' = √(scale/n)/.87962566103423978
VS_DISTRIBUTIONS = {"normal": 0.0, "truncated_normal": 1.0, "uniform": 2.0, "untruncated_normal": 0.0}
_VS_KERAS_MODES = {0.0: "fan_in", 1.0: "fan_out", 2.0: "fan_avg"}
_VS_KERAS_DISTRIBUTIONS = {0.0: "untruncated_normal", 1.0: "truncated_normal", 2.0: "uniform"}
TRUNCATED_STD = .87962566103423978  # std of N(0, 1) truncated to [−2, 2]: Keras divides σ by it


def _exact_scaling(params: Params) -> tuple[str, dict[str, Any]]:
    """variance_scaling: Keras' VarianceScaling with the config's scale, mode and distribution."""
    return "VarianceScaling", {"scale": params["scale"], "mode": _VS_KERAS_MODES[params["mode"]],
                               "distribution": _VS_KERAS_DISTRIBUTIONS[params["distribution"]]}


def _exact_scaling_variance(params: Params, shape: tuple[int, ...]) -> float:
    fan_in, fan_out = fans(shape)
    return params["scale"] / {0.0: fan_in, 1.0: fan_out, 2.0: (fan_in + fan_out) / 2}[params["mode"]]


def _zeros(params: Params) -> tuple[str, dict[str, Any]]:
    return "Zeros", {}


def _constant(params: Params) -> tuple[str, dict[str, Any]]:
    return "Constant", {"value": params["value"]}


def _none(params: Params, shape: tuple[int, ...]) -> None:
    return None


def hadamard(m: int):
    """Sylvester's Hadamard matrix H_m (2^m × 2^m): H_0 = [1], H_m = [[H_{m−1}, H_{m−1}], [H_{m−1}, −H_{m−1}]]."""
    import numpy as np

    h = np.ones((1, 1))
    for _ in range(m):
        h = np.block([[h, h], [h, -h]])
    return h


def partial_identity(rows: int, cols: int):
    """ZerO's I* (Zhao et al. 2022, Definition 1): ones on the diagonal of a rows × cols matrix, zeros elsewhere."""
    import numpy as np

    return np.eye(rows, cols)


def zero_kernel(shape: tuple[int, ...], seed: int | None = None, **_: float):
    """ZerO (Zhao et al. 2022, Algorithm 1) for a Dense kernel: the paper's W (P_out × P_in, y = W·x) is I when P_out =
    P_in, I* when P_out < P_in (the first P_out inputs pass on), and c·I*·H_m·I* with m = ⌈log₂ P_out⌉,
    c = 2^(−(m−1)/2) when P_out > P_in. Keras' kernel is in × out (y = x·K): K = Wᵀ. Deterministic: ``seed`` unused."""
    import numpy as np

    if len(shape) != 2:
        raise ValueError(f"zero_init is defined here for Dense kernels (in × out), not shape {tuple(shape)}")
    n_in, n_out = shape
    if n_out <= n_in:
        w = partial_identity(n_out, n_in)
    else:
        m = math.ceil(math.log2(n_out))
        w = 2.0 ** (-(m - 1) / 2) * partial_identity(n_out, 2**m) @ hadamard(m) @ partial_identity(2**m, n_in)
    return np.ascontiguousarray(w.T, dtype=np.float32)


def orthogonal_rows(rows: int, cols: int, seed: int):
    """A rows × cols matrix with orthonormal rows (rows ≤ cols) or columns: the QR decomposition of a Gaussian matrix,
    each column of Q sign-corrected by the sign of R's diagonal (Saxe et al. 2014; Mezzadri 2007)."""
    import numpy as np

    a = np.random.default_rng(seed).standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))  # a uniformly (Haar) distributed orthogonal matrix, not QR's sign convention
    return q.T if rows < cols else q


def delta_orthogonal_kernel(shape: tuple[int, ...], seed: int = 0, gain: float = 1.0, **_: float):
    """Delta-orthogonal (Xiao et al. 2018, Algorithm 2): a conv kernel (k_h, k_w, c_in, c_out) that is zero except at
    the centre tap, gain × a c_in × c_out matrix with orthonormal rows (c_in ≤ c_out); on a Dense kernel (in, out),
    gain × an orthogonal matrix."""
    import numpy as np

    if len(shape) == 2:
        return (gain * orthogonal_rows(shape[0], shape[1], seed)).astype(np.float32)
    *window, c_in, c_out = shape
    if c_in > c_out:
        raise ValueError(f"delta_orthogonal needs c_in ≤ c_out (an orthogonal centre tap keeps every input channel); "
                         f"this convolution maps {c_in} channels to {c_out}")
    kernel = np.zeros(shape, dtype=np.float32)
    kernel[tuple(k // 2 for k in window)] = gain * orthogonal_rows(c_in, c_out, seed)
    return kernel


# initializers computed here, in NumPy, from (kernel shape, seed, parameters): the engine wraps them as Keras ones
ARRAY_INITIALIZERS = {"ZerO": zero_kernel, "DeltaOrthogonal": delta_orthogonal_kernel}


def _delta_orthogonal_variance(params: Params, shape: tuple[int, ...]) -> float:
    """E[W²]: Dense gain²/max(in, out), as orthogonal; conv gain²·c_in over k_h·k_w·c_in·c_out entries = gain²/(k_h·k_w·c_out)."""
    gain = params.get("gain", 1.0)
    if len(shape) == 2:
        return gain**2 / max(shape)
    return gain**2 / (math.prod(shape[:-2]) * shape[-1])


# skipinit's `base`: the initializer its weights are drawn from (a choice of names, stored as a number)
SKIPINIT_BASES = {"he_normal": 0.0, "he_uniform": 1.0, "glorot_normal": 2.0, "glorot_uniform": 3.0,
                  "lecun_normal": 4.0, "orthogonal": 5.0}
# initializers that add learned scalars to every residual branch: the branch's multiplier starts at this value
BRANCH_SCALE = {"fixup": 1.0, "skipinit": 0.0}


def base_choice(choice: Choice) -> Choice:
    """The initializer a residual-net initializer draws its weights from: skipinit's ``base``, Fixup's He normal
    (then rescaled per layer by ``models.fixup_multiplier``); any other initializer is its own."""
    if choice.name == "skipinit":
        name = next(n for n, v in SKIPINIT_BASES.items() if v == choice.kwargs["base"])
        return INITIALIZERS.resolve(name)
    if choice.name == "fixup":
        return INITIALIZERS.resolve("he_normal")
    return choice


def _via_base(what: str):
    def call(params: Params, *args: Any) -> Any:
        base = base_choice(Choice("skipinit", tuple(sorted(params.items()))))
        entry = INITIALIZERS.entries[base.name]
        return getattr(entry, what)(base.kwargs, *args)

    return call


_TRUNC = "truncated normal rescaled to this variance (as Keras)"

_A = Param(0.0, "negative slope a of the leaky ReLU / PReLU that follows (0: ReLU)")
_GAIN_DOC = ("multiplier of the orthogonal matrix; or a name, resolved as PyTorch's calculate_gain: "
             + ", ".join(f"{k} = {v:.4g}" for k, v in GAINS.items()))

INITIALIZERS = Registry(
    "initializer",
    [
        Entry("zeros", "W = 0 (symmetric units: nothing breaks the symmetry)", build=_zeros,
              variance=lambda params, shape: 0.0),
        Entry(
            "constant",
            "W = value",
            {"value": Param(0.1, "the constant weight")},
            build=_constant,
            variance=_none,  # not zero-mean: no variance describes its signal
        ),
        Entry(
            "random_normal",
            "W ~ N(0, stddev²); stddev=1 is the naive 'N(0,1)', 0.01 the 'small Gaussian'",
            {"stddev": Param(1.0, "standard deviation", positive=True)},
            build=_random_normal,
            variance=lambda params, shape: params["stddev"] ** 2,
        ),
        Entry(
            "random_uniform",
            "W ~ U(-limit, limit)",
            {"limit": Param(0.05, "half-width of the interval", positive=True)},
            build=_random_uniform,
            variance=lambda params, shape: params["limit"] ** 2 / 3,
        ),
        Entry(
            "glorot2010_standard",
            "W ~ U(-1/√fan_in, 1/√fan_in), Var = 1/(3·fan_in)  (Glorot & Bengio 2010, 'standard')",
            **_variance_scaling(1.0 / 3.0, "fan_in", "uniform"),
        ),
        Entry(
            "lecun_normal",
            "Var = 1/fan_in, σ = √(1/fan_in)  (LeCun 1998)",
            **_variance_scaling(1.0, "fan_in", "truncated_normal"),
            note=_TRUNC,
        ),
        Entry(
            "lecun_uniform",
            "W ~ U(-√(3/fan_in), √(3/fan_in)), Var = 1/fan_in",
            **_variance_scaling(1.0, "fan_in", "uniform"),
        ),
        Entry(
            "glorot_normal",
            "Var = 2/(fan_in+fan_out)  (Xavier, Glorot & Bengio 2010)",
            **_variance_scaling(1.0, "fan_avg", "truncated_normal"),
            note=_TRUNC,
        ),
        Entry(
            "glorot_uniform",
            "W ~ U(-√(6/(fan_in+fan_out)), +√(6/(fan_in+fan_out))), Var = 2/(fan_in+fan_out)  (Xavier)",
            **_variance_scaling(1.0, "fan_avg", "uniform"),
        ),
        Entry(
            "he_normal",
            "Var = 2/((1+a²)·fan_in), σ = √(2/fan_in) for ReLU (a = 0)  (Kaiming, He et al. 2015 eq. 10/15)",
            {"a": _A},
            **_variance_scaling(_he_scale, "fan_in", "truncated_normal"),
            note=_TRUNC,
        ),
        Entry(
            "he_uniform",
            "W ~ U(-√(6/((1+a²)·fan_in)), +√(6/((1+a²)·fan_in))), Var = 2/((1+a²)·fan_in)  (Kaiming)",
            {"a": _A},
            **_variance_scaling(_he_scale, "fan_in", "uniform"),
        ),
        Entry(
            "he_normal_fan_out",
            "Var = 2/((1+a²)·fan_out): He et al. 2015's backward-pass form (eq. 14), PyTorch's mode='fan_out'",
            {"a": _A},
            **_variance_scaling(_he_scale, "fan_out", "truncated_normal"),
            note=_TRUNC,
        ),
        Entry(
            "he_uniform_fan_out",
            "W ~ U(-√(6/((1+a²)·fan_out)), +√(6/((1+a²)·fan_out))), Var = 2/((1+a²)·fan_out)  (He 2015 eq. 14)",
            {"a": _A},
            **_variance_scaling(_he_scale, "fan_out", "uniform"),
        ),
        Entry(
            "variance_scaling",
            "Var = scale/n, n = fan_in, fan_out or (fan_in+fan_out)/2 (mode): scale is σ_w², exactly, on every layer "
            "(the mean-field papers' W ~ N(0, σ_w²/N): Poole et al. 2016, Schoenholz et al. 2017); normal: "
            "N(0, scale/n); truncated_normal: N(0, σ'²) cut at ±2σ', σ' = √(scale/n)/.87962566103423978 (as Keras); "
            "uniform: U(−√(3·scale/n), +√(3·scale/n))",
            {"scale": Param(1.0, "σ_w²: the weight variance times n", positive=True),
             "mode": Param(0.0, "n: fan_in, fan_out or fan_avg", aliases=VS_MODES, names_only=True),
             "distribution": Param(0.0, "normal (a plain Gaussian; also untruncated_normal), truncated_normal "
                                        "(Keras' default, rescaled to the variance) or uniform",
                                   aliases=VS_DISTRIBUTIONS, names_only=True)},
            build=_exact_scaling,
            variance=_exact_scaling_variance,
            note="Keras' VarianceScaling, with a plain Gaussian by default (Keras' default is truncated_normal); "
                 "grid entries differing in scale are a σ_w² axis: with a depth axis the report draws the "
                 "trainability phase diagram",
        ),
        Entry(
            "lsuv",
            "Mishkin & Matas 2016: orthogonal pre-init, then hidden layer by hidden layer W ← W/√Var(layer output) "
            "on a training batch (the first examples of the training split) until |Var − 1| < tol or max_iter "
            "iterations; layers whose output has fewer than min_width values, and the output layer, keep their "
            "orthogonal init",
            {"tol": Param(0.1, "tolerance on |Var − 1|", positive=True),
             "max_iter": Param(10, "iterations per layer at most", positive=True),
             "min_width": Param(32, "hidden layers whose output has fewer values than this (Dense: units; conv: "
                                    "height·width·channels) are not rescaled, as in Mishkin & Matas' code "
                                    "(0: rescale every hidden layer)")},
            build=_orthogonal,  # gain 1: LSUV's orthogonal pre-init
            variance=_none,  # data-dependent
            note="needs data: the rescaling runs when the trial starts; iterations and final variances go to trial.json",
            needs_data=True,
            orthogonal=True,
        ),
        Entry(
            "orthogonal",
            "W = gain · Q, Q from the QR decomposition of a Gaussian matrix, sign-corrected (Saxe et al. 2014); "
            "Var = gain²/max(rows, cols) of the kernel flattened to (prod(shape[:-1]), shape[-1])",
            {"gain": Param(1.0, _GAIN_DOC, positive=True, aliases=GAINS)},
            build=_orthogonal,
            variance=_orthogonal_variance,
            orthogonal=True,
        ),
        Entry(
            "fixup",
            "Fixup (Zhang, Dauphin & Ma 2019) for residual nets without normalization, L blocks of m ≥ 2 layers: each "
            "branch's last layer W = 0; its other layers He normal (Var = 2/fan_in) × L^(−1/(2m−2)); the first layer "
            "and projections He normal; the output layer's W = 0; a scalar multiplier (1) on every branch's output "
            "and a scalar bias (0) before each of its Dense layers, trained",
            build=lambda params: ("VarianceScaling", {"scale": 2.0, "mode": "fan_in", "distribution": "truncated_normal"}),
            variance=_none,  # depends on the layer's place in its block: no one variance
            note="needs residual: true, block_depth ≥ 2 and normalization: none (it replaces normalization); the "
                 "Dense layers' own per-unit biases (0) stand for the paper's scalar biases before activations",
        ),
        Entry(
            "skipinit",
            "SkipInit (De & Smith 2020): a learned scalar gate α = 0 on every residual branch (h ← h + α·branch(h)), "
            "so the net computes its skip path at init; weights drawn from `base`",
            {"base": Param(0.0, "the initializer of the weights: " + ", ".join(SKIPINIT_BASES),
                           aliases=SKIPINIT_BASES, names_only=True)},
            build=_via_base("build"),
            variance=_via_base("variance"),
            note="needs residual: true",
        ),
        Entry(
            "zero_init",
            "ZerO (Zhao et al. 2022, Algorithm 1), deterministic, only zeros and ones: a Dense layer y = W·x with W "
            "(out × in) = I if out = in; I* (partial identity: the first `out` inputs pass) if out < in; "
            "c·I*·H_m·I* if out > in, H_m the 2^m × 2^m Hadamard matrix, m = ⌈log₂ out⌉, c = 2^(−(m−1)/2); Keras' "
            "kernel is Wᵀ (in × out)",
            build=lambda params: ("ZerO", {}),
            variance=_none,  # deterministic: no iid variance describes it
            note="Dense kernels only (MLPs); the paper pairs it with residual nets (its Algorithm 2 for convolutions "
                 "is not built here); every hidden and the output kernel is ZerO",
        ),
        Entry(
            "delta_orthogonal",
            "Xiao et al. 2018 (Algorithm 2): a conv kernel zero everywhere but the centre tap, which is gain × a "
            "c_in × c_out matrix with orthonormal rows (QR of a Gaussian, sign-corrected); c_in ≤ c_out. On Dense "
            "kernels: gain × an orthogonal matrix. E[W²] = gain²/(k_h·k_w·c_out) (conv), gain²/max(in, out) (Dense)",
            {"gain": Param(1.0, _GAIN_DOC, positive=True, aliases=GAINS)},
            build=lambda params: ("DeltaOrthogonal", {"gain": params.get("gain", 1.0)}),
            variance=_delta_orthogonal_variance,
            note="with same padding and no downsampling a delta-orthogonal conv net propagates signals as a "
                 "fully-connected orthogonal net of σ_w² = gain² (Xiao et al. 2018)",
            orthogonal=True,
        ),
        Entry(
            "matched",
            "Var = 1/(fan_in·E[φ(z)²]), z ~ N(0, 1), φ the trial's activation (by quadrature): an activation-matched "
            "gain, as Brock, De & Smith 2021's γ (NF-ResNets), so a unit second moment stays 1 through φ and the next "
            "layer; ReLU 2/fan_in (He), SELU and linear 1/fan_in (LeCun), GELU ≈ 2.35/fan_in, SiLU ≈ 2.81/fan_in, "
            "tanh ≈ 2.54/fan_in",
            {"base": Param(0.0, "the draw: normal (a truncated normal rescaled to the variance, as Keras) or uniform",
                           aliases=MATCHED_BASES, names_only=True)},
            build=_matched,
            variance=_matched_variance,
            note="every kernel of the trial, the first and the output layer's too (as He's 2/fan_in), takes the trial's "
                 "activation (PReLU at its initial slope). Brock et al. use Var φ(z): their standardized weights remove "
                 "the incoming mean; iid zero-mean weights pass it on, so the second moment is what is kept",
            needs_activation=True,
        ),
    ],
)


def weight_variance(choice: Choice, shape: tuple[int, ...], sigma_w2: float | None = None) -> float | None:
    """Var(W) of one weight of a kernel of ``shape`` drawn by ``choice``: the one place it is written.

    None where no variance describes the draw: ``constant`` (not zero-mean) and ``lsuv`` (set by data), and
    ``matched`` without its activation's ``sigma_w2`` (``analysis.meanfield.matched_sigma_w2``).
    """
    entry = INITIALIZERS.entries[choice.name]
    if entry.variance is None:
        return None
    if entry.needs_activation:
        return None if sigma_w2 is None else entry.variance(choice.kwargs, tuple(shape), sigma_w2)
    return entry.variance(choice.kwargs, tuple(shape))


def layer_seed(trial_seed: int, layer_index: int) -> int:
    """The seed of one layer's initializer, derived from the trial seed and the layer's position.

    Independent of the activation and of the initializer, so two trials with the same
    seed and initializer start from the same weights whatever their activation
    (comparisons are paired), and no two layers share a draw.
    """
    import numpy as np

    return int(np.random.SeedSequence([trial_seed, layer_index]).generate_state(1)[0] & 0x7FFFFFFF)


def bias_seed(trial_seed: int, layer_index: int) -> int:
    """The seed of one layer's biases (``model.bias_std`` > 0): as :func:`layer_seed`, from the trial seed and the
    layer's position, on a stream of its own, so biases never repeat a kernel's draw and the same seed gives the
    same biases whatever the initializer and activation."""
    import numpy as np

    return int(np.random.SeedSequence([trial_seed, layer_index, 1]).generate_state(1)[0] & 0x7FFFFFFF)


def keras_spec(choice: Choice, trial_seed: int, layer_index: int,
               sigma_w2: float | None = None) -> tuple[str, dict[str, Any]]:
    """The Keras initializer class name and arguments for one layer of one trial (the engine builds it);
    ``sigma_w2``: the trial's activation's, for an initializer that ``needs_activation`` (matched)."""
    entry = INITIALIZERS.entries[choice.name]
    if entry.needs_activation:
        if sigma_w2 is None:
            raise ValueError(f"initializer '{choice.name}' depends on the activation: pass its sigma_w2")
        name, kwargs = entry.build(choice.kwargs, sigma_w2)
    else:
        name, kwargs = entry.build(choice.kwargs)
    seeded = name not in ("Zeros", "Constant")
    return name, {**kwargs, **({"seed": layer_seed(trial_seed, layer_index)} if seeded else {})}


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """fan_in, fan_out of a kernel shape (Dense: (in, out); ConvND: (*kernel, c_in, c_out))."""
    if len(shape) < 2:
        raise ValueError(f"a kernel has at least 2 dimensions, got shape {shape}")
    receptive = math.prod(shape[:-2])
    return receptive * shape[-2], receptive * shape[-1]
