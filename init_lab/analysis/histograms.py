"""Per-layer histograms of activations and back-propagated gradients (Glorot & Bengio 2010, Figs. 3–7).

Measured on the fixed probe batch, per hidden layer: the activations φ(z) and the gradients ∂ℓ/∂z of each
example's own cross-entropy ℓ with respect to the layer's pre-activation z (the per-example loss, so the
scale does not depend on the probe batch size). Activations at initialization, at every epoch end and at
the logged steps of the first epochs (``training.step_diagnostics_epochs``; those on the probe batch's
first ``defaults.STEP_PROBE_SIZE`` examples); gradients at initialization and at every epoch end.

Bins are fixed, so histograms of one activation compare across trials, epochs and runs:

* activations: ``ACT_BINS`` equal bins over the activation's range — its infimum and supremum
  (sigmoid [0, 1], tanh [−1, 1], relu [0, …]), an unbounded side cut at ±``ACT_CAP``;
* gradients: signed log-spaced bins, ``GRAD_PER_DECADE`` per decade of |g| from 10^GRAD_MIN_EXP to
  10^GRAD_MAX_EXP on each side, and one bin [−10^GRAD_MIN_EXP, 10^GRAD_MIN_EXP) around 0 (a dead relu
  unit's exact zeros land there).

Every count vector has ``len(edges) + 1`` entries: [values below edges[0], the bins [e_i, e_{i+1}) (the
last one closed on the right), values ≥ … above edges[-1]] — nothing is dropped, so a layer's counts sum to
its number of finite values (examples × units, × positions in a conv layer); non-finite values (a diverging
trial) are counted apart.

On disk, per trial, ``histograms.npz`` (NumPy, compressed) with these arrays:

``layers`` (L,) names · ``act_edges``, ``grad_edges`` · ``epoch`` (E,) epochs (0 = initialization) ·
``epoch_act`` (E, L, A) and ``epoch_grad`` (E, L, G) counts · ``epoch_act_nonfinite``, ``epoch_grad_nonfinite``
(E, L) · ``step`` (S,) optimizer steps · ``step_epoch`` (S,) · ``step_progress`` (S,) in epochs ·
``step_act`` (S, L, A) · ``step_act_nonfinite`` (S, L).
"""

from __future__ import annotations

import functools
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from init_lab.analysis.meanfield import phi
from init_lab.catalog.registry import Choice

FILE = "histograms.npz"
ACT_BINS = 50
FINE = 40  # sub-bins per activation bin, for the per-step percentiles
CHUNK = 65_536  # values binned at a time
ACT_CAP = 4.0
GRAD_MIN_EXP, GRAD_MAX_EXP, GRAD_PER_DECADE = -10, 4, 4


def activation_edges(choice: Choice) -> np.ndarray:
    """``ACT_BINS`` + 1 equal-width edges over the activation's range, unbounded sides cut at ±ACT_CAP."""
    f = phi(choice)
    x = np.concatenate([np.linspace(-20.0, 20.0, 8001), [-1e4, 1e4]])
    y = f(x)
    lo, hi = max(float(np.min(y)), -ACT_CAP), min(float(np.max(y)), ACT_CAP)
    return np.linspace(lo, hi, ACT_BINS + 1)


def gradient_edges() -> np.ndarray:
    """Signed log-spaced edges: −10^max … −10^min, 10^min … 10^max."""
    magnitudes = 10.0 ** np.linspace(GRAD_MIN_EXP, GRAD_MAX_EXP, (GRAD_MAX_EXP - GRAD_MIN_EXP) * GRAD_PER_DECADE + 1)
    return np.concatenate([-magnitudes[::-1], magnitudes])


def fine_counts(values: np.ndarray, edges: np.ndarray, finite: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``values`` (rows, n): counts in ``FINE`` equal sub-bins of every bin of the equal-width
    ``edges`` (plus under and over), and the number of non-finite values. Arithmetic binning (no search):
    the activation histograms and the per-step percentiles both come from it. ``finite``: per row, whether all
    its values are known to be finite (they are then not checked again)."""
    rows = values.shape[0]
    v = np.asarray(values, dtype=np.float32).reshape(rows, -1)
    n, n_fine = v.shape[1], (len(edges) - 1) * FINE
    width = n_fine + 3  # sub-bins, under, over, non-finite
    known = np.zeros(rows, dtype=bool) if finite is None else np.asarray(finite, dtype=bool)
    if 0 < n < CHUNK:  # short rows (a dense layer's): several rows binned at once, each row's indices offset
        per = CHUNK // n
        counts = np.empty((rows, width), dtype=np.int64)
        for first in range(0, rows, per):
            block = v[first: first + per]
            idx = _fine_index(block.reshape(-1), edges, n_fine, bool(known[first: first + per].all()))
            idx.reshape(len(block), n)[...] += (np.arange(len(block)) * width)[:, None]
            counts[first: first + len(block)] = np.bincount(idx, minlength=len(block) * width).reshape(-1, width)
    else:
        counts = np.zeros((rows, width), dtype=np.int64)
        for r in range(rows):
            for start in range(0, n, CHUNK):  # cache-sized pieces: 3× faster than whole rows of 1000 units
                counts[r] += np.bincount(_fine_index(v[r, start: start + CHUNK], edges, n_fine, bool(known[r])),
                                         minlength=width)
    return counts[:, : n_fine + 2], counts[:, n_fine + 2]


def _fine_index(v: np.ndarray, edges: np.ndarray, n_fine: int, finite: bool = False) -> np.ndarray:
    """Sub-bin index of each value: 0 under, 1..n_fine the sub-bins (the last closed), n_fine + 1 over,
    n_fine + 2 non-finite. In float64, so that the boundaries are those of the float64 edges; whole-array
    operations only (a boolean-mask assignment costs several of them). ``finite``: known to be all finite."""
    lo, hi = float(edges[0]), float(edges[-1])
    x = v.astype(np.float64)
    if not finite and not np.isfinite(x).all():  # a diverging trial's inf/NaN: the general form
        finite_values = np.isfinite(x)
        with np.errstate(invalid="ignore"):
            idx = np.floor(np.clip((x - lo) * (n_fine / (hi - lo)), -1, n_fine - 1)) + 1
        idx = np.where(x > hi, n_fine + 1, idx)
        return np.where(finite_values, idx, n_fine + 2).astype(np.int64)
    # every value finite: the same indices by arithmetic alone (np.where was half the time), in place, as the
    # platform integer bincount takes (an int32 index was converted there: 14 % of the time); the floor is written
    # straight into that integer array (its values are whole numbers from −1 to n_fine − 1: the cast is exact)
    over = x > hi
    x -= lo
    x *= n_fine / (hi - lo)
    np.clip(x, -1, n_fine - 1, out=x)
    idx = np.empty(x.shape, dtype=np.intp)
    np.floor(x, out=idx, casting="unsafe")
    idx += 1
    idx += over
    return idx


def coarse(fine: np.ndarray) -> np.ndarray:
    """Fine counts (rows, bins·FINE + 2) → histogram counts (rows, bins + 2)."""
    inner = fine[:, 1:-1].reshape(fine.shape[0], -1, FINE).sum(axis=2)
    return np.concatenate([fine[:, :1], inner, fine[:, -1:]], axis=1)


def percentiles(fine: np.ndarray, edges: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """Percentiles (rows, len(qs)) read from fine counts, values spread evenly within a sub-bin: within a
    sub-bin's width, (edges[-1] − edges[0]) / (bins · FINE), of the order statistics that numpy's linear rule
    interpolates between. NaN where one falls outside the edges (the caller computes it exactly)."""
    n_fine = fine.shape[1] - 2
    width = (float(edges[-1]) - float(edges[0])) / n_fine
    cum = np.cumsum(fine, axis=1)
    total = cum[:, -1:]  # (rows, 1)
    # the value of order statistic ⌊rank⌋, as numpy's linear rule: (rows, len(qs))
    rank = np.array([q / 100 for q in qs])[None, :] * (total - 1) + 0.5
    # searchsorted(cum[r], rank, side="left") for every row and q at once: the number of cumulative counts below it
    k = (cum[:, None, :] < rank[:, :, None]).sum(axis=2)
    inside = (1 <= k) & (k <= n_fine) & (total > 0)
    kk = np.where(inside, k, 1)
    before = np.take_along_axis(cum, kk - 1, axis=1)
    within = np.take_along_axis(fine, kk, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = float(edges[0]) + width * (kk - 1 + (rank - before) / within)
    return np.where(inside, values, np.nan)


def count(values: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, int]:
    """Counts (len(edges) + 1: under, bins, over) of the finite values, and the number of non-finite ones.
    Any increasing edges (the gradients' log-spaced ones)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    finite = np.isfinite(v)
    return np.bincount(_bins(v[finite], edges), minlength=len(edges) + 1).astype(np.int64), int((~finite).sum())


def _bins(v: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Each finite value's bin: the number of edges at or below it, the last bin closed (sigmoid's 1.0 is in range,
    not over it)."""
    idx = np.searchsorted(edges, np.asarray(v, dtype=np.float64), side="right")
    idx[v == edges[-1]] = len(edges) - 1
    return idx


def count_gradients(values: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, int]:
    """``count`` on the gradient edges (``gradient_edges``), the same counts 4–5× faster: a value's bin is looked up
    by the top 16 bits of its float (``_prefix_table``) and one comparison, where a binary search over 114 edges
    took 0.13 s for a conv layer's 5.5 M values. Float32 values, or float64 ones; anything else as float32."""
    v = np.asarray(values).ravel()
    if v.dtype != np.float64:
        v = v.astype(np.float32, copy=False)
    finite = np.isfinite(v)
    v = v if finite.all() else v[finite]
    table = _prefix_table(np.asarray(edges, dtype=np.float64).tobytes(), v.dtype.str)
    if table is None:  # edges closer than a prefix's range (not the gradient edges): the search
        return count(v, edges)[0], int((~finite).sum())
    base, threshold, shift = table
    counts = np.zeros(len(edges) + 1, dtype=np.int64)
    unsigned = np.dtype(f"u{v.dtype.itemsize}")
    for start in range(0, v.size, CHUNK):  # cache-sized pieces
        x = v[start: start + CHUNK]
        prefix = x.view(unsigned) >> shift
        idx = base[prefix]
        idx += x >= threshold[prefix]
        counts += np.bincount(idx, minlength=len(edges) + 1)
    return counts, int((~finite).sum())


PREFIX_BITS = 16  # a float's sign, exponent and first mantissa bits: float32 values of one prefix span 0.8 %


@functools.lru_cache(maxsize=8)
def _prefix_table(edges_bytes: bytes, dtype_str: str) -> tuple[np.ndarray, np.ndarray, int] | None:
    """For every 16-bit prefix of a float's bits (``dtype_str``: float32 or float64): the bin of the smallest value
    with that prefix, and the smallest value with that prefix in the next bin (+inf if none), so that any finite x
    is in bin base[p] + (x ≥ threshold[p]), p its prefix — exactly ``_bins``: both come from it, and a value's bin
    only grows with the value. None if some prefix's values span more than one edge (edges closer than that: the
    gradient edges are a factor 10^¼ apart, a prefix's values at most 0.8 % for float32, 6 % for float64)."""
    edges, dtype = np.frombuffer(edges_bytes, dtype=np.float64), np.dtype(dtype_str)
    unsigned = np.dtype(f"u{dtype.itemsize}")
    shift = 8 * dtype.itemsize - PREFIX_BITS
    mask = (1 << shift) - 1  # the bits below the prefix
    prefix = np.arange(1 << PREFIX_BITS, dtype=unsigned)
    first, negative = prefix << shift, prefix >> (PREFIX_BITS - 1) == 1

    def value(p: np.ndarray, position: np.ndarray) -> np.ndarray:
        """The value at ``position`` (0: the smallest) among those with prefix ``p``: bits grow with the magnitude,
        so a negative prefix's values are in the reverse order of its bits."""
        low = np.where(negative[p], mask - position, position).astype(unsigned)
        return (first[p] | low).view(dtype)

    every = np.arange(prefix.size)
    smallest, largest = value(every, np.zeros(prefix.size, np.int64)), value(every, np.full(prefix.size, mask))
    usable = np.isfinite(smallest) & np.isfinite(largest)  # inf and NaN patterns: never looked up (counted apart)
    lo, hi = (_bins(np.where(usable, a, 0.0), edges) for a in (smallest, largest))
    if (hi - lo > 1).any():
        return None
    threshold = np.full(prefix.size, np.inf, dtype=dtype)
    split = np.nonzero(hi > lo)[0]
    below, above = np.zeros(split.size, np.int64), np.full(split.size, mask, np.int64)
    while (below < above).any():  # the first position in the higher bin, each split prefix at once
        middle = (below + above) // 2
        up = _bins(value(split, middle), edges) == hi[split]
        below, above = np.where(up, below, middle + 1), np.where(up, middle, above)
    threshold[split] = value(split, below)
    return lo.astype(np.intp), threshold, shift


def centres(edges: np.ndarray) -> np.ndarray:
    return (edges[:-1] + edges[1:]) / 2


@dataclass
class HistogramLog:
    """One trial's histograms so far; grows snapshot by snapshot and travels in its checkpoints."""

    layers: list[str]
    act_edges: np.ndarray
    grad_edges: np.ndarray
    epoch: list[int] = field(default_factory=list)
    epoch_act: list[np.ndarray] = field(default_factory=list)  # per snapshot: (L, A)
    epoch_grad: list[np.ndarray] = field(default_factory=list)
    epoch_act_nonfinite: list[np.ndarray] = field(default_factory=list)  # per snapshot: (L,)
    epoch_grad_nonfinite: list[np.ndarray] = field(default_factory=list)
    step: list[int] = field(default_factory=list)
    step_epoch: list[int] = field(default_factory=list)
    step_progress: list[float] = field(default_factory=list)
    step_act: list[np.ndarray] = field(default_factory=list)
    step_act_nonfinite: list[np.ndarray] = field(default_factory=list)

    @classmethod
    def start(cls, layers: list[str], choice: Choice) -> HistogramLog:
        return cls(list(layers), activation_edges(choice), gradient_edges())

    def gradient_counts(self, grads: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(L, G) counts and (L,) non-finite counts of one trial's layers, on the (log-spaced) gradient bins."""
        pairs = [count_gradients(g, self.grad_edges) for g in grads]
        return np.stack([c for c, _ in pairs]), np.array([n for _, n in pairs], dtype=np.int64)

    def activation_counts(self, acts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(L, A) counts and (L,) non-finite counts of one trial's layers, on the activation bins."""
        pairs = [fine_counts(np.asarray(a).reshape(1, -1), self.act_edges) for a in acts]
        return np.stack([coarse(f)[0] for f, _ in pairs]), np.array([int(n[0]) for _, n in pairs], dtype=np.int64)

    def add_epoch(self, epoch: int, acts: list[np.ndarray], grads: list[np.ndarray]) -> None:
        """Activation and gradient histograms of every layer at an epoch end (0: initialization)."""
        counts, bad = self.activation_counts(acts)
        self.epoch.append(int(epoch))
        self.epoch_act.append(counts)
        self.epoch_act_nonfinite.append(bad)
        counts, bad = self.gradient_counts(grads)
        self.epoch_grad.append(counts)
        self.epoch_grad_nonfinite.append(bad)

    def add_step(self, step: int, epoch: int, progress: float, counts: np.ndarray, bad: np.ndarray) -> None:
        """Activation histograms (L, A) of every layer at a logged training step, and non-finite counts (L,)."""
        self.step.append(int(step))
        self.step_epoch.append(int(epoch))
        self.step_progress.append(float(progress))
        self.step_act.append(counts)
        self.step_act_nonfinite.append(bad)

    def arrays(self) -> dict[str, np.ndarray]:
        """The file's arrays (see the module docstring)."""
        L, A, G = len(self.layers), len(self.act_edges) + 1, len(self.grad_edges) + 1

        def stack(items: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
            return np.stack(items).astype(np.int64) if items else np.zeros((0, *shape), dtype=np.int64)

        return {
            "layers": np.array(self.layers, dtype=str),
            "act_edges": np.asarray(self.act_edges, dtype=np.float64),
            "grad_edges": np.asarray(self.grad_edges, dtype=np.float64),
            "epoch": np.array(self.epoch, dtype=np.int64),
            "epoch_act": stack(self.epoch_act, (L, A)),
            "epoch_grad": stack(self.epoch_grad, (L, G)),
            "epoch_act_nonfinite": stack(self.epoch_act_nonfinite, (L,)),
            "epoch_grad_nonfinite": stack(self.epoch_grad_nonfinite, (L,)),
            "step": np.array(self.step, dtype=np.int64),
            "step_epoch": np.array(self.step_epoch, dtype=np.int64),
            "step_progress": np.array(self.step_progress, dtype=np.float64),
            "step_act": stack(self.step_act, (L, A)),
            "step_act_nonfinite": stack(self.step_act_nonfinite, (L,)),
        }

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> HistogramLog:
        return cls(
            [str(x) for x in a["layers"]], np.asarray(a["act_edges"]), np.asarray(a["grad_edges"]),
            [int(x) for x in a["epoch"]], list(a["epoch_act"]), list(a["epoch_grad"]),
            list(a["epoch_act_nonfinite"]), list(a["epoch_grad_nonfinite"]),
            [int(x) for x in a["step"]], [int(x) for x in a["step_epoch"]], [float(x) for x in a["step_progress"]],
            list(a["step_act"]), list(a["step_act_nonfinite"]),
        )

    def to_bytes(self) -> bytes:
        import io

        buf = io.BytesIO()
        np.savez_compressed(buf, **self.arrays())
        return buf.getvalue()


def read(path: Path) -> dict[str, np.ndarray] | None:
    """A trial's histograms.npz as arrays, or None when missing or unreadable."""
    try:
        with np.load(Path(path)) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # a torn or foreign file: no histograms
        return None
