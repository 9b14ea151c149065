"""Model classes of the engine: the variables and forward pass of a group of T ≥ 1 trials.

Two classes plug into the one training loop (``loop``):

* :class:`PackedMLP` — T same-shaped MLP trials as one computation: activations are trial-major
  (T, batch, h), every layer one batched matmul with kernels (T, h_in, h_out), activations applied per
  contiguous slice of trials (ordered by activation). In training each trial has its own batch (its
  own seed's order, gathered per trial: ``per_trial=True``), so trials of different seeds pack; the
  evaluation passes share one input batch, broadcast over the trials. Reductions over
  the batch are batched matmuls with a ones vector (``_batch_sums``): TensorFlow's reduce_sum rounds
  differently for different numbers of trials, a batched matmul does not, so a trial's numbers are
  bit-identical whatever group it trains in (a resumed, regrouped sweep reproduces an uninterrupted
  one exactly). A single wide first-layer matmul was measured no faster here and rounds by T.
* :class:`KerasNets` — T ordinary Keras models side by side (the MNIST CNN, and every trial under
  ``--no-pack``: the reference implementation the packed one is tested against).

Both take activations from the one registry (``catalog.activations``, applied with ``backend.OPS``)
and initial weights from the same Keras initializers and layer seeds, so a trial is the same trial
in either class. Every variable belongs either to one trial or is stacked with one slice per trial
(``owners``), which is what lets a group's state be cut into per-trial checkpoints and reassembled.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from init_lab.analysis.diagnostics import LayerSignals
from init_lab.analysis.jacobian import Spectrum, log_singular_values, spectrum_of_matrices
from init_lab.catalog import defaults
from init_lab.catalog.activations import ACTIVATIONS
from init_lab.catalog.initializers import BRANCH_SCALE, INITIALIZERS
from init_lab.catalog.models import (
    Architecture,
    Conv,
    GlobalAvgPool,
    NetKind,
    branch_layers,
    fixup_multiplier,
    split_stack,
)
from init_lab.catalog.registry import Choice
from init_lab.config.grid import TrialSpec
from init_lab.engine.backend import (
    LINALG,
    OPS,
    build_bias_initializer,
    build_initializer,
    keras,
    scaled_initializer,
    tf,
)

STACKED = None  # owner of a variable with one slice per trial on axis 0
FLOAT32_RESOLUTION = 5.0  # decades of s_max/s_min an explicit float32 Jacobian resolves (eps 6e-8, summed over layers)

# layer names; per hidden layer the pre-activations and the activations of every trial: (T, batch, …)
Activations = tuple[list[str], list[np.ndarray], list[np.ndarray]]


class GroupNet:
    """What the loop needs of a model class; subclasses set the attributes and the three passes."""

    kind: NetKind  # recorded in checkpoints: a state is only restored into the same class
    specs: list[TrialSpec]  # in the model's trial order
    variables: list[Any]
    owners: list[int | None]  # per variable: STACKED, or the index of the trial owning it
    n: int  # slices of a stacked variable: T, plus a ghost where a lone trial needs one (PackedMLP)
    param_count: int  # per trial: its trained parameters
    jit: bool = False  # XLA-compile the training step
    # state that is not trained but must be checkpointed (BatchNorm's moving mean and variance), and its owners
    buffers: list[Any] = []
    buffer_owners: list[int | None] = []

    @property
    def T(self) -> int:
        return len(self.specs)

    def logits(self, x: Any, training: bool = False, per_trial: bool = False) -> Any:  # (T, batch, classes)
        """Logits of a batch shared by every trial (batch, …), or with ``per_trial`` one batch per slice (n, batch, …)."""
        raise NotImplementedError

    def losses(self, x: Any, y: Any, training: bool = False, per_trial: bool = False,
               rows: Any = None) -> tuple[Any, Any]:
        """Per-trial mean cross-entropy (T,) and correct counts (T,) of a batch (labels (batch,) or (n, batch)); with
        ``rows`` (a packed group's compiled steps), of its first ``rows`` examples only, the rest being padding."""
        return per_trial_loss(self.logits(x, training, per_trial), y, rows)

    def per_variable(self, values: list[float]) -> list[Any]:
        """One per-trial scalar (a learning rate…) laid out like ``variables``: (n, 1, …) over a stacked
        variable (the ghost, if any, takes the first trial's), a scalar for a variable one trial owns."""
        padded = np.array(list(values) + [values[0]] * (self.n - self.T), dtype=np.float32)
        return [tf.constant(padded.reshape([self.n] + [1] * (len(v.shape) - 1))) if o is STACKED
                else tf.constant(padded[o]) for v, o in zip(self.variables, self.owners)]

    def probe(self, x: Any, y: Any) -> dict[str, LayerSignals]:
        """Per trial: every hidden layer's signals on the batch, forward and backward."""
        raise NotImplementedError

    def activations(self, x: Any) -> Activations:
        """Every hidden layer's pre-activations and activations, trials stacked in ``specs`` order (forward only)."""
        raise NotImplementedError

    def jacobian(self, x: Any) -> dict[str, Spectrum]:
        """Per trial: the singular values (examples, k) of ∂z_L/∂x, the input–output Jacobian of the last
        hidden layer's pre-activation at each example of ``x`` (``analysis.jacobian``: their logs, descending)."""
        raise NotImplementedError

    def lsuv(self, x: Any) -> dict[str, list[dict[str, Any]]]:
        """LSUV (Mishkin & Matas 2016) on the group's lsuv trials, in place; each one's log."""
        raise NotImplementedError

    def per_trial(self, tensors: list[Any], owners: list[int | None] | None = None) -> list[list[np.ndarray]]:
        """Cut tensors aligned with ``variables`` (or with ``owners``: the buffers') into each trial's arrays."""
        owners = self.owners if owners is None else owners
        arrays = _numpy(tensors)
        return [[a[t] if o is STACKED else a for a, o in zip(arrays, owners) if o is STACKED or o == t]
                for t in range(self.T)]

    def assign(self, targets: list[Any], per_trial: list[list[np.ndarray]],
               owners: list[int | None] | None = None) -> None:
        """Inverse of :meth:`per_trial`: set ``targets`` (aligned with ``variables``, or ``owners``) from trials' arrays."""
        cursor = [0] * self.T
        for target, owner in zip(targets, self.owners if owners is None else owners):
            if owner is STACKED:
                parts = []
                for t in range(self.T):
                    parts.append(per_trial[t][cursor[t]])
                    cursor[t] += 1
                value = np.stack(parts + parts[:1] * (target.shape[0] - self.T))  # a ghost slice, if any
            else:
                value = per_trial[owner][cursor[owner]]
                cursor[owner] += 1
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(f"state shape {value.shape} does not fit variable {tuple(target.shape)}")
            target.assign(value)


def _numpy(tensors: list[Any]) -> list[np.ndarray]:
    """Tensors' and variables' values as read-only NumPy views, without the copy ``.numpy()`` makes (a probe of 16
    trials copied 66 MB, at this machine's cost of fresh pages; a 16-trial MLP's weights and Adam slots, 52 MB, took
    0.16 s a snapshot). A variable's ``np.asarray`` is such a copy; its value read as a tensor is not, and stays as it
    was when the variable is assigned afterwards (TensorFlow writes a buffer that is still referenced anew)."""
    return [np.asarray(tf.convert_to_tensor(t)) for t in tensors]


def kernel_initializer(choice: Choice, seed: int, layer: int, act: Choice, arch: Architecture) -> Any:
    """Kernel ``layer``'s initializer (hidden layers 0…, the output layer last): the grid's, and for Fixup its He-normal
    draw × ``models.fixup_multiplier`` (0 for each branch's last layer and the output layer)."""
    init = build_initializer(choice, seed, layer, act)
    return scaled_initializer(init, fixup_multiplier(arch, layer)) if choice.name == "fixup" else init


class _KernelDraws:
    """One group's initial kernels: trials whose draw is the same (initializer, seed, layer and shape; the activation
    only for an activation-matched initializer) share one draw. A 4 × 4 grid of initializers × activations drew each
    kernel four times (building its group: 0.20–0.30 → 0.14–0.19 s)."""

    def __init__(self):
        self.drawn: dict[tuple, np.ndarray] = {}

    def __call__(self, spec: TrialSpec, layer: int, shape: tuple[int, int]) -> np.ndarray:
        matched = INITIALIZERS.entries[spec.initializer.name].needs_activation
        key = (spec.initializer, spec.seed, layer, spec.activation if matched else None, spec.arch, shape)
        if key not in self.drawn:
            init = kernel_initializer(spec.initializer, spec.seed, layer, spec.activation, spec.arch)
            self.drawn[key] = np.asarray(init(shape=shape, dtype="float32"))
        return self.drawn[key]


def _scalar(p, like):
    """A per-trial scalar (n, 1, 1) broadcast to ``like`` (n, batch, h); its gradient sums as matmuls (``_over_batch``)."""
    return _over_batch(tf.matmul(p, tf.ones([p.shape[0], 1, like.shape[-1]], p.dtype)), like)


def activation(choice: Choice, learned: dict[str, Any] | None = None):
    """The registry's function for ``choice`` as a tensor function (learned parameters passed in)."""
    entry = ACTIVATIONS.entries[choice.name]
    params = {**choice.kwargs, **(learned or {})}
    return lambda x: entry.fn(x, OPS, params)


def per_trial_loss(logits: Any, labels: Any, rows: Any = None) -> tuple[Any, Any]:
    """Per-trial mean cross-entropy (T,) and correct counts (T,) of a batch; batch sums as matmuls.
    ``labels``: (batch,) shared by every trial, or (T, batch) one batch per trial. ``rows``: only the batch's first
    ``rows`` examples count (the rest pad the epoch's last batch to the others' shape); None: all of them."""
    y = labels if labels.shape.rank == 2 else tf.broadcast_to(labels[None, :], tf.shape(logits)[:2])
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
    hits = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.int32)
    if rows is None:
        return _batch_sums(ce[:, :, None])[:, 0, 0] / tf.cast(tf.shape(ce)[1], ce.dtype), tf.reduce_sum(hits, axis=1)
    mask = _row_mask(rows, tf.shape(ce)[1], ce.dtype)  # × 1 or × 0: a full batch's values, exactly
    mean = _batch_sums((ce * mask)[:, :, None])[:, 0, 0] / tf.cast(rows, ce.dtype)
    return mean, tf.reduce_sum(hits * tf.cast(mask, tf.int32), axis=1)


def _row_mask(rows: Any, batch: Any, dtype: Any) -> Any:
    """(batch,): 1 for the first ``rows`` examples of a padded batch, 0 for the padding."""
    return tf.cast(tf.range(batch) < rows, dtype)


def _batch_sums(a):
    """(T, B, n) → (T, 1, n): the sum over the batch, as a per-trial matmul."""
    return tf.matmul(tf.ones([tf.shape(a)[0], 1, tf.shape(a)[1]], a.dtype), a)


@tf.custom_gradient
def _add_bias(h, b):
    def grad(dh):
        return dh, _batch_sums(dh)

    return h + b, grad


@tf.custom_gradient
def _over_batch(p, like):
    """Broadcast a (T, 1, n) parameter over the batch of ``like``; its gradient sums as a matmul."""

    def grad(d):
        return _batch_sums(d), tf.zeros_like(like)

    return tf.broadcast_to(p, tf.shape(like)), grad


def _batch_norm(z, gamma, beta, mean, var, over_batch: bool = True):
    """tf.nn.batch_normalization's formula (Keras' BatchNormalization on TensorFlow): x·s + (β − μ·s), s = γ/√(σ²+ε).
    ``over_batch``: s and β − μ·s are (n, 1, h), broadcast over the batch by ``_over_batch`` (their gradients' batch
    sums as matmuls: TensorFlow's broadcast gradient is a reduce_sum, which rounds differently for different groups)."""
    inv = tf.math.rsqrt(var + defaults.NORM_EPSILON) * gamma
    shift = beta - mean * inv
    if over_batch:
        return z * _over_batch(inv, z) + _over_batch(shift, z)
    return z * inv + shift


def _lsuv_log(layer: str, iterations: int, variance: float, width: int, min_width: float) -> dict[str, Any]:
    """One layer's entry of a trial's LSUV log (trial.json); a layer left as it was says why."""
    entry: dict[str, Any] = {"layer": layer, "iterations": int(iterations), "final_variance": float(variance)}
    if width < min_width:
        entry["skipped"] = f"output smaller than min_width ({width} < {min_width:g} values)"
    return entry


class PackedMLP(GroupNet):
    """T same-shaped MLP trials as one computation."""

    kind = NetKind.PACKED_MLP
    jit = defaults.XLA

    def __init__(self, specs: list[TrialSpec], input_dim: int, n_classes: int):
        self.specs = sorted(specs, key=lambda s: (s.activation, s.index))
        # XLA compiles a batch of one matmul as a plain matmul, which rounds differently: a lone trial gets
        # a ghost copy (no loss, so no gradient, so it never moves) to keep its numbers those of any group
        self.n = self.T + (1 if self.jit and self.T == 1 else 0)
        widths = [input_dim, *self.specs[0].arch.hidden, n_classes]
        shapes = list(zip(widths[:-1], widths[1:]))
        draw = _KernelDraws()
        kernels = [np.stack([draw(s, i, shape) for s in self.specs]) for i, shape in enumerate(shapes)]
        kernels = [np.concatenate([k, k[:1].repeat(self.n - self.T, axis=0)]) for k in kernels]
        self.ws = [tf.Variable(k, name=f"w{i}") for i, k in enumerate(kernels)]  # (n, in, out)
        self.bs = [tf.Variable(self._biases(i, n_out), name=f"b{i}") for i, (_, n_out) in enumerate(shapes)]
        arch = self.specs[0].arch
        self.arch = arch
        # residual blocks: the layer whose output adds the block's input, and that input's projection (or None)
        self.block_first = {b.first: b for b in arch.blocks}
        self.block_last = {b.last: b for b in arch.blocks}
        self.projections = {b.index: tf.Variable(self._projection(b), name=f"proj{b.index}")
                            for b in arch.blocks if b.projection}
        # normalization: a scale γ (1) and shift β (0) per unit of each hidden layer, one slice per trial; BatchNorm's
        # moving mean (0) and variance (1), one slice per trial too: its own statistics, whatever its group
        hidden_widths = widths[1:-1]
        normed = arch.normalization != "none"
        self.gammas = [tf.Variable(tf.ones([self.n, 1, h]), name=f"gamma{i}") for i, h in enumerate(hidden_widths)] \
            if normed else []
        self.betas = [tf.Variable(tf.zeros([self.n, 1, h]), name=f"beta{i}") for i, h in enumerate(hidden_widths)] \
            if normed else []
        bn = arch.normalization == "batchnorm"
        self.moving_means = [tf.Variable(tf.zeros([self.n, 1, h]), trainable=False, name=f"mean{i}")
                             for i, h in enumerate(hidden_widths)] if bn else []
        self.moving_vars = [tf.Variable(tf.ones([self.n, 1, h]), trainable=False, name=f"var{i}")
                            for i, h in enumerate(hidden_widths)] if bn else []
        # Fixup / SkipInit (every trial of the group is of one kind: run.plan packs them apart): a learned multiplier
        # per residual branch (1 / 0), and Fixup's scalar bias (0) before each of the branches' Dense layers
        kinds = {s.initializer.name if s.initializer.name in BRANCH_SCALE else None for s in self.specs}
        if len(kinds) > 1:
            raise ValueError(f"one packed group holds one kind of branch scalars (Fixup, SkipInit or none), not {kinds}")
        self.branch_kind = kinds.pop()
        start = BRANCH_SCALE.get(self.branch_kind, 1.0)
        self.gates = [tf.Variable(tf.fill([self.n, 1, 1], start), name=f"gate{b.index}") for b in arch.blocks] \
            if self.branch_kind else []
        self.pre_biases = {layer: tf.Variable(tf.zeros([self.n, 1, 1]), name=f"prebias{layer}")
                           for layer in branch_layers(arch)} if self.branch_kind == "fixup" else {}
        self.buffers = [v for pair in zip(self.moving_means, self.moving_vars) for v in pair]
        self.buffer_owners = [STACKED] * len(self.buffers)
        self.slices = self._slices()
        # PReLU: a (1, 1, h) slope per hidden layer for each trial that learns one, owned by that trial,
        # so a trial's state is the same whatever else shares its group
        self.slopes = {t: [tf.Variable(tf.fill([1, 1, h], s.activation.kwargs["alpha_init"]), name=f"slope{t}_{i}")
                           for i, h in enumerate(widths[1:-1])]
                       for t, s in enumerate(self.specs) if ACTIVATIONS.entries[s.activation.name].learned}
        stacked = [v for pair in zip(self.ws, self.bs) for v in pair]
        stacked += list(self.projections.values()) + [v for pair in zip(self.gammas, self.betas) for v in pair]
        stacked += self.gates + list(self.pre_biases.values())
        self.variables = stacked + [v for t in self.slopes for v in self.slopes[t]]
        self.owners = [STACKED] * len(stacked) + [t for t in self.slopes for _ in self.slopes[t]]
        self.param_count = sum(i * o + o for i, o in shapes) + arch.projection_params + arch.norm_params \
            + len(self.gates) + len(self.pre_biases)
        # a graph: eager, the forward pass at every logged step (step_layers.csv) cost several times more
        self._forward_graph = tf.function(lambda xs: self.forward(xs)[:2], autograph=False)

    def _biases(self, layer: int, n_out: int):
        """Layer ``layer``'s biases (n, 1, n_out): zeros, as always, unless a trial draws N(0, σ_b²) (model.bias_std),
        from the same Keras initializer and seed as its one-model form, so a trial starts alike in either class."""
        if not any(s.bias_std for s in self.specs):
            return tf.zeros([self.n, 1, n_out])
        drawn = [np.asarray(build_bias_initializer(s.bias_std, s.seed, layer)(shape=(n_out,), dtype="float32"))
                 for s in self.specs]
        drawn += drawn[:1] * (self.n - self.T)  # the ghost copies the first trial, as its kernels do
        return tf.constant(np.stack(drawn)[:, None, :])

    def _projection(self, block) -> np.ndarray:
        """A residual block's projection (n, in, out), where the width changes: the grid's initializer, drawn from
        layer_seed(seed, PROJECTION_SEED_BASE + block), as the Keras model's proj_<block> layer."""
        drawn = [np.asarray(build_initializer(s.initializer, s.seed, defaults.PROJECTION_SEED_BASE + block.index,
                                              s.activation)(shape=block.projection, dtype="float32"))
                 for s in self.specs]
        return np.stack(drawn + drawn[:1] * (self.n - self.T))

    def _normalize(self, h, layer: int, mode: str, rows: Any = None):
        """N(h) of hidden layer ``layer``: the identity, LayerNorm, or BatchNorm with each trial's statistics over its
        own batch (``mode`` "train": and its moving averages updated; "probe": not updated) or its moving averages
        ("eval"). Batch means are batched matmuls with a ones vector (``_batch_sums``): a trial's rounding does not
        depend on its group. ``rows``: the statistics are the batch's first ``rows`` examples' (``per_trial_loss``)."""
        norm = self.arch.normalization
        if norm == "none":
            return h
        gamma, beta = self.gammas[layer], self.betas[layer]
        if norm == "layernorm":  # each example's own statistics (n, batch, 1); γ, β broadcast over the batch
            mean = tf.reduce_mean(h, axis=-1, keepdims=True)
            var = tf.reduce_mean(tf.square(h - mean), axis=-1, keepdims=True)
            inv = tf.math.rsqrt(var + defaults.NORM_EPSILON)
            return (h - mean) * inv * _over_batch(gamma, h) + _over_batch(beta, h)
        if mode == "eval":
            return _batch_norm(h, gamma, beta, self.moving_means[layer], self.moving_vars[layer], over_batch=False)
        if rows is None:
            size = tf.cast(tf.shape(h)[1], h.dtype)
            mean = _batch_sums(h) / size
            var = _batch_sums(tf.square(h - _over_batch(mean, h))) / size  # biased, as Keras' moments
        else:  # padding rows × 0: they add exact zeros to the sums
            mask, size = _row_mask(rows, tf.shape(h)[1], h.dtype)[None, :, None], tf.cast(rows, h.dtype)
            mean = _batch_sums(h * mask) / size
            var = _batch_sums(tf.square(h - _over_batch(mean, h)) * mask) / size
        if mode == "train":
            m = defaults.BN_MOMENTUM
            self.moving_means[layer].assign(self.moving_means[layer] * m + tf.stop_gradient(mean) * (1.0 - m))
            self.moving_vars[layer].assign(self.moving_vars[layer] * m + tf.stop_gradient(var) * (1.0 - m))
        return _batch_norm(h, gamma, beta, mean, var)

    def _slices(self) -> list[tuple[int, int, Choice]]:
        out, start = [], 0
        while start < self.T:
            end = start
            while end < self.T and self.specs[end].activation == self.specs[start].activation:
                end += 1
            out.append((start, end, self.specs[start].activation))
            start = end
        s, _, choice = out[-1]
        out[-1] = (s, self.n, choice)  # the ghost, if any, shares the last slice
        return out

    def _act(self, z, layer: int):
        alpha = None
        if self.slopes:  # one (n, 1, h) slope tensor over the whole group, broadcast once: its gradient's
            # batch sum then has the group's shape whatever slice the PReLU trials form (no batch-of-one sums)
            zero = tf.zeros([1, 1, z.shape[-1]])
            alpha = _over_batch(tf.concat([self.slopes[min(t, self.T - 1)][layer] if min(t, self.T - 1) in self.slopes
                                           else zero for t in range(self.n)], axis=0), z)
        if len(self.slices) == 1:
            choice = self.slices[0][2]
            return activation(choice, {"alpha": alpha} if ACTIVATIONS.entries[choice.name].learned else None)(z)
        # tf.split, not z[s:e]: a slice's gradient is a zero-padded copy of the whole tensor, one per slice
        # (a 7-activation group's step took 15 % longer than one activation's); split's is one concat
        sizes = [e - s for s, e, _ in self.slices]
        zs = tf.split(z, sizes, axis=0)
        alphas = tf.split(alpha, sizes, axis=0) if alpha is not None else [None] * len(sizes)
        parts = [activation(choice, {"alpha": a} if ACTIVATIONS.entries[choice.name].learned else None)(part)
                 for (_, _, choice), part, a in zip(self.slices, zs, alphas)]
        return tf.concat(parts, axis=0)

    def forward(self, x, per_trial: bool = False, mode: str = "probe", rows: Any = None):
        """``_forward``'s pre-activations, activations and logits."""
        return self._forward(x, per_trial, mode, rows)[:3]

    def _forward(self, x, per_trial: bool = False, mode: str = "probe", rows: Any = None):
        """(batch, in), or per trial (n, batch, in) → pre-activations and activations of every hidden layer,
        and logits (n, batch, ·); then each hidden layer's h and, per residual block's last layer, its branch's output.
        A hidden layer's pre-activation is N(h), h its Dense output plus, at a residual block's last layer, the
        block's input (projected where the width changes); ``mode`` is BatchNorm's (``_normalize``): "probe" (the
        diagnostics: batch statistics, nothing updated), "train" or "eval"; ``rows``: as ``per_trial_loss``'s."""
        pres, acts, streams, branches = [], [], [], {}
        # a shared batch (1, batch, in): the batched matmul broadcasts it over the trials (the same products as a
        # materialized (n, batch, in) copy, bit for bit, without writing 103 MB per 2,048-example evaluation chunk)
        h = x if per_trial else x[None]
        stream = z = None
        for layer, (w, b) in enumerate(zip(self.ws, self.bs)):
            if layer in self.block_first:
                stream = z  # the previous layer's output (layer ≥ 1): the block's input
            if layer in self.pre_biases:
                h = h + _scalar(self.pre_biases[layer], h)
            z = _add_bias(tf.matmul(h, w), b)
            if layer in self.block_last:
                block = self.block_last[layer]
                if self.gates:  # the branch's multiplier: Fixup's scale, SkipInit's α
                    z = z * _scalar(self.gates[block.index], z)
                branches[layer] = z
                z = z + (tf.matmul(stream, self.projections[block.index]) if block.projection else stream)
            if layer == len(self.ws) - 1:
                return pres, acts, z, streams, branches
            pre = self._normalize(z, layer, mode, rows)
            h = self._act(pre, layer)
            pres.append(pre)
            acts.append(h)
            streams.append(z)

    def logits(self, x, training: bool = False, per_trial: bool = False, rows: Any = None):
        return self.forward(x, per_trial, "train" if training else "eval", rows)[2]  # (n, batch, classes): the ghost too

    def losses(self, x, y, training: bool = False, per_trial: bool = False, rows: Any = None):
        # all n slices: the same shapes as any group
        losses, hits = per_trial_loss(self.logits(x, training, per_trial, rows), y, rows)
        return losses[: self.T], hits[: self.T]

    def probe(self, x, y) -> dict[str, LayerSignals]:
        with tf.GradientTape() as tape:
            pres, acts, logits, streams, branches = self._forward(x)
            total = tf.reduce_sum(per_trial_loss(logits, y)[0][: self.T])
        hidden, L = self.ws[:-1], len(acts)
        grads = tape.gradient(total, acts + hidden + pres)
        per_example = [g * float(x.shape[0]) for g in grads[2 * L:]]  # ∂(mean loss)/∂z × batch = ∂ℓ_i/∂z_i
        arrays = [_numpy(group) for group in (pres, acts, grads[:L], hidden, grads[L: 2 * L], per_example)]
        names = [f"dense_{i}" for i in range(len(hidden))]
        extra = self.arch.residual or self.arch.normalization != "none"  # h differs from the pre-activation
        streams = _numpy(streams) if extra else []
        branches = dict(zip(branches, _numpy(list(branches.values()))))
        return {s.id: LayerSignals(names, *([a[t] for a in group] for group in arrays),
                                   streams=[z[t] for z in streams], branches={k: v[t] for k, v in branches.items()})
                for t, s in enumerate(self.specs)}

    def activations(self, x) -> Activations:
        pres, acts = self._forward_graph(x)
        return [f"dense_{i}" for i in range(len(pres))], [p[: self.T] for p in _numpy(pres)], \
            [a[: self.T] for a in _numpy(acts)]

    def jacobian(self, x) -> dict[str, Spectrum]:
        if not self.arch.plain:  # the product of kernels and φ′ below is a plain chain's Jacobian only
            return {}
        # float64 from here: the kernels, and φ′ at the float32 forward pass's pre-activations; the QR accumulation
        # through the layers (analysis.jacobian) resolves condition numbers to ≈ 10³⁰⁰ and J's exact rank
        pres = self.forward(x)[0]
        derivatives = [self._derivative64(z, layer) for layer, z in enumerate(pres[:-1])]
        kernels = [tf.cast(w[: self.T, None], tf.float64) for w in self.ws[:-1]]  # (T, 1, in, out): every example
        log_s, rank = log_singular_values(kernels, derivatives, (self.T, int(x.shape[0])), LINALG)
        return {s.id: Spectrum(log_s[t], rank[t]) for t, s in enumerate(self.specs)}

    def _derivative64(self, z, layer: int) -> np.ndarray:
        """φ′(z) in float64, (T, E, h), each trial by its own activation (PReLU at its current slope)."""
        z = tf.cast(z[: self.T], tf.float64)
        parts = []
        for start, end, choice in self.slices:
            end = min(end, self.T)
            if start >= end:
                continue
            learned = None
            if ACTIVATIONS.entries[choice.name].learned:
                learned = {"alpha": tf.cast(tf.concat([self.slopes[t][layer] for t in range(start, end)], 0), tf.float64)}
            part = z[start:end]
            with tf.GradientTape() as tape:
                tape.watch(part)
                a = activation(choice, learned)(part)
            parts.append(tape.gradient(a, part))
        return tf.concat(parts, axis=0).numpy()

    def lsuv(self, x) -> dict[str, list[dict[str, Any]]]:
        """Hidden layer by hidden layer, for all chosen trials at once: W ← W/√Var(layer output) until
        |Var − 1| < tol or max_iter rescalings; the next layer then sees the rescaled layer's activations.
        Layers narrower than a trial's min_width, and the output layer, keep their orthogonal init."""
        chosen = np.array([s.initializer.name == "lsuv" for s in self.specs] + [False] * (self.n - self.T))
        logs: dict[str, list[dict[str, Any]]] = {s.id: [] for s, c in zip(self.specs, chosen) if c}
        if not chosen.any():
            return logs
        pad = [0.0] * (self.n - self.T)
        tol = np.array([s.initializer.kwargs.get("tol", 0.0) for s in self.specs] + pad)
        max_iter = np.array([int(s.initializer.kwargs.get("max_iter", 0)) for s in self.specs] + pad)
        min_width = np.array([s.initializer.kwargs.get("min_width", 0.0) for s in self.specs] + pad)
        h = tf.broadcast_to(x[None], [self.n, tf.shape(x)[0], x.shape[-1]])
        for layer, (w, b) in enumerate(zip(self.ws[:-1], self.bs[:-1])):  # hidden layers only
            width = int(w.shape[-1])
            rescaled = chosen & (width >= min_width)
            iterations = np.zeros(self.n, dtype=int)
            while True:
                z = _add_bias(tf.matmul(h, w), b)
                var = z.numpy().astype(np.float64).reshape(self.n, -1).var(axis=1)  # per trial, not by T
                todo = rescaled & (np.abs(var - 1) >= tol) & (iterations < max_iter) & (var > 0)
                if not todo.any():
                    break
                scale = np.where(todo, 1 / np.sqrt(np.where(var > 0, var, 1)), 1.0).astype(np.float32)
                w.assign(w * scale[:, None, None])
                iterations += todo
            for t, spec in enumerate(self.specs):
                if chosen[t]:
                    logs[spec.id].append(_lsuv_log(f"dense_{layer}", iterations[t], var[t], width, min_width[t]))
            h = self._act(z, layer)
        return logs


class LearnedActivation(keras.layers.Layer):
    """A registry activation with trained parameters (PReLU's slope: one per unit, per channel in convs)."""

    def __init__(self, choice: Choice, **kwargs):
        super().__init__(**kwargs)
        self.choice = choice

    def build(self, input_shape):
        init = keras.initializers.Constant(self.choice.kwargs.get("alpha_init", 0.0))
        self.alpha = self.add_weight(name="alpha", shape=(input_shape[-1],), initializer=init)

    def call(self, x):
        return activation(self.choice, {"alpha": self.alpha})(x)


def activation_layer(choice: Choice, name: str) -> Any:
    if ACTIVATIONS.entries[choice.name].learned:
        return LearnedActivation(choice, name=name)
    return keras.layers.Activation(activation(choice), name=name)


def build_keras_model(arch: Architecture, input_shape: tuple[int, ...], n_classes: int, initializer: Choice,
                      act: Choice, seed: int, bias_std: float = 0.0) -> Any:
    """A Keras model for one trial, ending in logits: ``arch.layers`` in order, then the output layer. Hidden layers
    are named dense_i/act_i (conv_i/act_conv_i; pools pool_i). Layer i (output last) draws its kernel from
    layer_seed(seed, i) and, with σ_b = ``bias_std`` > 0, its biases N(0, σ_b²) from bias_seed(seed, i): conv layers too."""
    inputs = keras.Input(shape=input_shape, name="pixels")
    x, layer = inputs, 0

    def inits() -> dict[str, Any]:
        nonlocal layer
        layer += 1
        return {"kernel_initializer": kernel_initializer(initializer, seed, layer - 1, act, arch),
                "bias_initializer": build_bias_initializer(bias_std, seed, layer - 1)}

    images, dense = split_stack(arch.layers)
    first = {b.first: b for b in arch.blocks}  # residual blocks over the convolutions (CNN) or Dense layers (MLP)
    last = {b.last: b for b in arch.blocks}
    h = stream = None

    def skip_added(h, i: int, conv: bool):
        """A residual block's last layer: its output plus the block's input (projected where the width changes:
        a 1×1 convolution or a Dense layer without biases, seeded on the projections' own stream)."""
        block = last[i]
        skip = stream
        if initializer.name in BRANCH_SCALE:  # Fixup's multiplier, SkipInit's α on the branch's output
            h = ScalarLayer("scale", BRANCH_SCALE[initializer.name], name=f"gate_{block.index}")(h)
        if block.projection:
            init = build_initializer(initializer, seed, defaults.PROJECTION_SEED_BASE + block.index, act)
            layer = keras.layers.Conv2D(block.projection[1], 1, use_bias=False, kernel_initializer=init,
                                        name=f"proj_{block.index}") if conv else \
                keras.layers.Dense(block.projection[1], use_bias=False, kernel_initializer=init, name=f"proj_{block.index}")
            skip = layer(stream)
        return keras.layers.Add(name=f"add_{block.index}")([h, skip])

    def normalized(h, name: str):
        return _norm_layer(arch.normalization, name, conv=len(h.shape) == 4)(h) if arch.normalization != "none" else h

    branch = branch_layers(arch) if initializer.name == "fixup" else {}

    def pre_biased(x, i: int, kind: str):
        """Fixup's scalar bias before each Dense (conv) layer of a branch."""
        return ScalarLayer("bias", 0.0, name=f"prebias_{kind}{i}")(x) if i in branch else x

    convs = pools = 0
    for spec in images:  # input_shape's channels, whatever they are: 1 for grey images, 3 for colour
        if isinstance(spec, Conv):
            if convs in first:
                stream = h
            x = pre_biased(x, convs, "conv_")
            h = keras.layers.Conv2D(spec.filters, spec.kernel, padding=spec.padding, **inits(), name=f"conv_{convs}")(x)
            if convs in last:
                h = skip_added(h, convs, conv=True)
            x = activation_layer(act, f"act_conv_{convs}")(normalized(h, f"norm_conv_{convs}"))
            convs += 1
        elif isinstance(spec, GlobalAvgPool):
            x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
        else:
            x = keras.layers.MaxPooling2D(spec.size, name=f"pool_{pools}")(x)
            if arch.residual:  # the stream (the next block's input) is downsampled alike
                h = keras.layers.MaxPooling2D(spec.size, name=f"pool_{pools}_stream")(h)
            pools += 1
    if len(input_shape) > 1 or images:
        x = keras.layers.Flatten(name="flatten")(x)
    h = stream = None
    for i, spec in enumerate(dense):
        if i in first:
            stream = h  # the block's input: the previous layer's output, before its normalization
        x = pre_biased(x, i, "")
        h = keras.layers.Dense(spec.units, **inits(), name=f"dense_{i}")(x)
        if i in last:
            h = skip_added(h, i, conv=False)
        x = activation_layer(act, f"act_{i}")(normalized(h, f"norm_dense_{i}"))
    logits = keras.layers.Dense(n_classes, **inits(), name="output")(x)
    return keras.Model(inputs, logits, name=arch.kind)


class ScalarLayer(keras.layers.Layer):
    """One learned scalar: a multiplier (``kind`` "scale") or an added bias ("bias"), starting at ``start``."""

    def __init__(self, kind: str, start: float, **kwargs):
        super().__init__(**kwargs)
        self.kind, self.start = kind, float(start)

    def build(self, input_shape):
        self.value = self.add_weight(name=self.kind, shape=(), initializer=keras.initializers.Constant(self.start))

    def call(self, x):
        return x * self.value if self.kind == "scale" else x + self.value


def _norm_layer(normalization: str, name: str, conv: bool = False) -> Any:
    """Keras' BatchNormalization or LayerNormalization, with the packed MLP's constants (``defaults``); a conv layer's
    LayerNorm is over height, width and channels with a scale and shift per channel: GroupNorm with one group."""
    if normalization == "batchnorm":
        return keras.layers.BatchNormalization(momentum=defaults.BN_MOMENTUM, epsilon=defaults.NORM_EPSILON, name=name)
    if conv:
        return keras.layers.GroupNormalization(groups=1, epsilon=defaults.NORM_EPSILON, name=name)
    return keras.layers.LayerNormalization(epsilon=defaults.NORM_EPSILON, name=name)


class KerasNets(GroupNet):
    """T Keras models side by side; each owns its variables."""

    kind = NetKind.KERAS

    def __init__(self, specs: list[TrialSpec], input_shape: tuple[int, ...], n_classes: int, clear_session: bool = True):
        if clear_session:  # Keras' names, and TensorFlow's kernel cache: what earlier models left behind
            keras.backend.clear_session(free_memory=False)
        self.specs = list(specs)
        self.n = len(self.specs)
        self.models = [build_keras_model(s.arch, input_shape, n_classes, s.initializer, s.activation, s.seed, s.bias_std)
                       for s in self.specs]
        self.variables = [v for m in self.models for v in m.trainable_variables]
        self.owners = [t for t, m in enumerate(self.models) for _ in m.trainable_variables]
        # BatchNorm's moving averages: state, not trained, checkpointed with the rest
        self.buffers = [v for m in self.models for v in m.non_trainable_variables]
        self.buffer_owners = [t for t, m in enumerate(self.models) for _ in m.non_trainable_variables]
        self.param_count = int(sum(np.prod(v.shape) for v in self.models[0].trainable_variables))
        self.plain = self.specs[0].arch.plain
        self._probes = [self._probe_fn(m) for m in self.models]

    def logits(self, x, training: bool = False, per_trial: bool = False):
        return tf.stack([m(x[t] if per_trial else x, training=training) for t, m in enumerate(self.models)])

    def same_shapes(self, other: KerasNets) -> bool:
        """Whether ``other``'s models have variables (trained and not) of the same paths and shapes, in order."""
        shapes = lambda net: [(v.path, tuple(v.shape)) for v in net.variables + net.buffers]  # noqa: E731
        return len(other.models) == len(self.models) and shapes(other) == shapes(self)

    def take(self, other: KerasNets) -> None:
        """Become ``other``: its trials, and its models' values in this one's variables (``engine.programs``: the
        passes traced for these models serve the trials of a later group of the same structure)."""
        for mine, theirs in zip(self.variables + self.buffers, other.variables + other.buffers):
            mine.assign(theirs.value)
        self.specs = other.specs

    @staticmethod
    def _pairs(model) -> list[tuple[Any, Any]]:
        pairs = []
        for layer in model.layers:
            if layer.name.startswith("dense_"):
                pairs.append((layer, model.get_layer("act_" + layer.name[len("dense_"):])))
            elif layer.name.startswith("conv_"):
                pairs.append((layer, model.get_layer("act_" + layer.name)))
        return pairs

    def _probe_fn(self, model):
        pairs = self._pairs(model)
        # a layer's pre-activation is its activation's input: the Dense (conv) output, or after a residual block's
        # skip and the normalization, N(h)
        outputs = [a.input for _, a in pairs] + [a.output for _, a in pairs] + [model.output]
        # each hidden layer's h (before its normalization, after a block's skip) and each block's branch output
        names = {layer.name for layer in model.layers}
        stream_of = lambda k: model.get_layer("norm_" + k.name) if "norm_" + k.name in names else None  # noqa: E731
        streams = [stream_of(k).input if stream_of(k) is not None else a.input for k, a in pairs]
        adds = [(i, model.get_layer(f"add_{b.index}")) for i, b in enumerate(self.specs[0].arch.blocks)]
        last = [b.last for b in self.specs[0].arch.blocks]
        branches = [add.input[0] for _, add in adds]
        extra = bool(adds) or len(names & {"norm_" + k.name for k, _ in pairs}) > 0
        outputs += (streams if extra else []) + branches
        sub = keras.Model(model.inputs, outputs)
        kernels = [k.kernel for k, _ in pairs]
        n = len(pairs)
        n_streams = n if extra else 0
        moving = list(model.non_trainable_variables)
        # diagnostics see BatchNorm as in training (the probe batch's own statistics), which would move its averages:
        # they are put back, so measuring never changes what a trial computes
        batch_stats = bool(moving)

        def call(x):
            saved = [tf.identity(v) for v in moving]
            outs = sub(x, training=batch_stats)
            with tf.control_dependencies(outs):
                for v, value in zip(moving, saved):
                    v.assign(value)
            return outs

        @tf.function(reduce_retracing=True, autograph=False)
        def run(x, y):
            with tf.GradientTape() as tape:
                outs = call(x)
                pres, acts, logits = outs[:n], outs[n: 2 * n], outs[2 * n]
                loss = tf.reduce_sum(per_trial_loss(logits[None], y)[0])
            grads = tape.gradient(loss, acts + kernels + pres)
            batch = tf.cast(tf.shape(x)[0], tf.float32)  # ∂(mean loss)/∂z × batch = ∂ℓ_i/∂z_i
            return (pres, acts, grads[:n], grads[n: 2 * n], [g * batch for g in grads[2 * n:]],
                    outs[2 * n + 1: 2 * n + 1 + n_streams], outs[2 * n + 1 + n_streams:])

        @tf.function(reduce_retracing=True, autograph=False)
        def forward(x):
            outs = call(x)
            return outs[:n], outs[n: 2 * n]

        return [k.name for k, _ in pairs], kernels, run, forward, last

    def jacobian(self, x) -> dict[str, Spectrum]:
        out = {}
        if not self.plain:  # as the packed MLP's: the last Dense output is not z_L of a residual or normalized net
            return out
        for spec, model in zip(self.specs, self.models):
            last = [k for k, _ in self._pairs(model) if k.name.startswith("dense_")][-1]
            sub = keras.Model(model.inputs, last.output)
            x = tf.convert_to_tensor(x)
            with tf.GradientTape() as tape:
                tape.watch(x)
                z = sub(x, training=False)
            jac = tf.reshape(tape.batch_jacobian(z, x), [x.shape[0], z.shape[-1], -1]).numpy()
            # an explicit float32 Jacobian: singular values below ≈ 10⁻⁵·s_max are its rounding, not J's
            out[spec.id] = spectrum_of_matrices(jac, FLOAT32_RESOLUTION)
        return out

    def probe(self, x, y) -> dict[str, LayerSignals]:
        out = {}
        for spec, (names, kernels, run, _, last) in zip(self.specs, self._probes):
            pres, acts, g_out, g_k, g_pre, streams, branches = run(x, y)
            out[spec.id] = LayerSignals(names, *map(_numpy, (pres, acts, g_out, kernels, g_k, g_pre)),
                                        streams=_numpy(streams), branches=dict(zip(last, _numpy(branches))))
        return out

    def activations(self, x) -> Activations:
        per_trial = [forward(x) for _, _, _, forward, _ in self._probes]

        def stack(k: int, i: int) -> np.ndarray:
            if len(per_trial) == 1:  # a Keras group's usual size: a view with the trial axis, not a copy (fresh
                return np.asarray(per_trial[0][k][i])[None]  # pages for 5.6 MB a conv layer and logged step)
            return np.stack([np.asarray(trial[k][i]) for trial in per_trial])

        n = len(per_trial[0][0])
        return self._probes[0][0], [stack(0, i) for i in range(n)], [stack(1, i) for i in range(n)]

    def lsuv(self, x) -> dict[str, list[dict[str, Any]]]:
        """Each hidden kernel layer (Dense, Conv2D) whose output has at least min_width values (a Dense layer's
        units; a conv layer's height·width·channels, as Mishkin & Matas' code counts them) rescaled by
        1/√Var(its output) until |Var − 1| < tol; smaller ones and the output layer keep their orthogonal init."""
        logs = {}
        for spec, model in zip(self.specs, self.models):
            if spec.initializer.name != "lsuv":
                continue
            kwargs = spec.initializer.kwargs
            tol, max_iter, min_width = kwargs["tol"], int(kwargs["max_iter"]), kwargs["min_width"]
            log = []
            for layer, _ in self._pairs(model):  # hidden layers, input first
                sub = keras.Model(model.inputs, layer.output)
                width = int(np.prod(layer.output.shape[1:]))  # values per example: units, or H·W·C of a conv
                iterations, var = 0, float(tf.math.reduce_variance(sub(x, training=False)))
                while width >= min_width and abs(var - 1.0) >= tol and iterations < max_iter and var > 0:
                    layer.kernel.assign(layer.kernel / np.sqrt(var))
                    iterations += 1
                    var = float(tf.math.reduce_variance(sub(x, training=False)))
                log.append(_lsuv_log(layer.name, iterations, var, width, min_width))
            logs[spec.id] = log
        return logs


def build_net(kind: NetKind, specs: list[TrialSpec], input_shape: tuple[int, ...], n_classes: int,
              clear_session: bool = True) -> GroupNet:
    """The group's networks; Keras models after clearing Keras' session unless ``clear_session`` is False (a kept
    structure's compiled passes are about to be reused: clearing would drop their instantiated kernels)."""
    if kind == PackedMLP.kind:
        return PackedMLP(specs, int(np.prod(input_shape)), n_classes)
    return KerasNets(specs, input_shape, n_classes, clear_session)
