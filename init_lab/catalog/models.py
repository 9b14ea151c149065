"""Model families and presets (DESIGN §4): shapes as data; the engine builds the networks.

The grid's initializer and activation apply to every hidden layer; the output
layer uses the grid's initializer and softmax. Biases start at 0. Layer ``i``
(counting from 0, output last) always draws its weights from
``layer_seed(trial_seed, i)``.

A network's hidden layers are data (:attr:`Architecture.layers`): :class:`Conv`, :class:`Pool` and
:class:`Dense`, input first, each with its arithmetic (output shape, parameters, multiply-adds). The
engine builds the Keras layers from them, the memory and time estimates count them, and ``initlab list
models`` describes the CNN from them. The CNN's stack is ``MNIST_CNN``; a configurable CNN is a function
returning such a tuple.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

from init_lab.catalog import defaults

Shape = tuple[int, ...]  # one example: (height, width, channels) of an image, (n,) of a vector


@dataclass(frozen=True)
class Conv:
    """A 2-D convolution: ``filters`` output channels, a ``kernel``×``kernel`` window, stride 1, no padding
    ("valid") or zero padding that keeps the image's size ("same")."""

    filters: int
    kernel: int = 3
    padding: str = "valid"

    @property
    def label(self) -> str:
        return f"Conv2D({self.filters},{self.kernel}×{self.kernel}{', same' if self.padding == 'same' else ''})"

    def output(self, shape: Shape) -> Shape:
        h, w, _ = shape
        if self.padding == "same":
            return h, w, self.filters
        return h - self.kernel + 1, w - self.kernel + 1, self.filters

    def params(self, shape: Shape) -> int:
        return self.kernel * self.kernel * shape[-1] * self.filters + self.filters  # kernel and biases

    def multiply_adds(self, shape: Shape) -> int:
        return math.prod(self.output(shape)) * self.kernel * self.kernel * shape[-1]


@dataclass(frozen=True)
class Pool:
    """Max-pooling over ``size``×``size`` windows, stride ``size`` (a remainder row or column is dropped)."""

    size: int = 2

    @property
    def label(self) -> str:
        return f"MaxPool({self.size})"

    def output(self, shape: Shape) -> Shape:
        h, w, c = shape
        return h // self.size, w // self.size, c

    def params(self, shape: Shape) -> int:
        return 0

    def multiply_adds(self, shape: Shape) -> int:
        return 0


@dataclass(frozen=True)
class Dense:
    """A fully connected layer of ``units``, with biases, on its input flattened."""

    units: int

    @property
    def label(self) -> str:
        return f"Dense({self.units})"

    def output(self, shape: Shape) -> Shape:
        return (self.units,)

    def params(self, shape: Shape) -> int:
        return math.prod(shape) * self.units + self.units

    def multiply_adds(self, shape: Shape) -> int:
        return math.prod(shape) * self.units


@dataclass(frozen=True)
class GlobalAvgPool:
    """The mean of each channel over the image: (H, W, C) → (C,), the head of a configurable CNN."""

    @property
    def label(self) -> str:
        return "GlobalAvgPool"

    def output(self, shape: Shape) -> Shape:
        return (shape[-1],)

    def params(self, shape: Shape) -> int:
        return 0

    def multiply_adds(self, shape: Shape) -> int:
        return 0


Layer = Conv | Pool | Dense | GlobalAvgPool

# the mnist_cnn stack: the classic TensorFlow MNIST CNN
MNIST_CNN: tuple[Layer, ...] = (Conv(32), Pool(2), Conv(64), Pool(2), Conv(64), Dense(64))


def split_stack(layers: tuple[Layer, ...]) -> tuple[tuple[Layer, ...], tuple[Layer, ...]]:
    """A stack's image layers (convolutions and pools) and the dense layers after them (on their output flattened)."""
    n = next((i for i, layer in enumerate(layers) if isinstance(layer, Dense)), len(layers))
    return layers[:n], layers[n:]


def trace(layers: tuple[Layer, ...], input_shape: Shape) -> Iterator[tuple[Layer, Shape]]:
    """Each layer with the shape of the example it receives."""
    shape = input_shape
    for layer in layers:
        yield layer, shape
        shape = layer.output(shape)


def describe_stack(layers: tuple[Layer, ...]) -> str:
    """'Conv2D(32,3×3) → MaxPool(2) → … → Flatten → Dense(64) → Dense(classes, softmax)'."""
    images, dense = split_stack(layers)
    flat = bool(images) and not isinstance(images[-1], GlobalAvgPool)
    labels = [layer.label for layer in images] + ["Flatten"] * flat + [layer.label for layer in dense]
    return " → ".join([*labels, "Dense(classes, softmax)"])


def _side_after(layers: tuple[Layer, ...], side: int) -> int:
    """An image side after the stack's convolutions and pools (≤ 0: the image is too small for it)."""
    shape: Shape = (side, side, 1)
    for layer in split_stack(layers)[0]:
        if isinstance(layer, GlobalAvgPool):  # the head: any side ≥ 1 reaches it
            break
        shape = layer.output(shape)
    return shape[0]


def _least_side(layers: tuple[Layer, ...]) -> int:
    return next(n for n in range(1, 1000) if _side_after(layers, n) >= 1)


_NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _counted(layers: list[Layer], noun: str) -> str:
    """'three 3×3 convolutions': how many, and their window where they share one."""
    windows = {layer.kernel if isinstance(layer, Conv) else layer.size for layer in layers}
    window = f" {next(iter(windows))}×{next(iter(windows))}" if len(windows) == 1 else ""
    count = _NUMBERS[len(layers)] if len(layers) < len(_NUMBERS) else str(len(layers))
    return f"{count}{window} {noun}{'s' if len(layers) != 1 else ''}"


def cnn_fits(image_shape: tuple[int, ...], kind: str = "mnist_cnn", layers: tuple[Layer, ...] | None = None) -> str | None:
    """Why images of this shape are too small for the CNN ``kind`` (its stack, or ``layers``), or None when they fit."""
    layers = MODEL_KINDS[kind].layers if layers is None else layers
    h, w = image_shape[:2]
    if min(_side_after(layers, h), _side_after(layers, w)) >= 1:
        return None
    least = _least_side(layers)
    convs = _counted([layer for layer in layers if isinstance(layer, Conv)], "convolution")
    pools = _counted([layer for layer in layers if isinstance(layer, Pool)], "pool")
    return (f"{kind}'s {convs} and {pools} need images of at least {least}×{least}; "
            f"these are {h}×{w}: " + ("use fewer pools (model.pool_every)" if kind == "cnn" else "use an MLP (model.kind: mlp)"))


@dataclass(frozen=True)
class ModelKind:
    name: str
    family: str  # "mlp" or "cnn"
    description: str
    hidden: tuple[int, ...] | None = None  # fixed preset widths; None: configurable
    configurable: bool = False  # accepts hidden / depth / width
    layers: tuple[Layer, ...] = ()  # the CNN's stack (its hidden layers, input first)


MODEL_KINDS: dict[str, ModelKind] = {
    m.name: m
    for m in [
        ModelKind(
            "mlp",
            "mlp",
            f"flatten (any image shape) → Dense(width) × depth → Dense(classes, softmax); `hidden: [..]` or depth/width "
            f"(default hidden {list(defaults.MLP_HIDDEN)})",
            configurable=True,
        ),
        ModelKind("mlp_500x2", "mlp", "MLP with two hidden layers of 500", hidden=(500, 500)),
        ModelKind("glorot2010", "mlp", "MLP with five hidden layers of 1000 (Glorot & Bengio 2010)", hidden=(1000,) * 5),
        ModelKind(
            "deep_mlp",
            "mlp",
            f"deep plain MLP for vanishing/exploding signals: depth {defaults.DEEP_MLP_DEPTH} × width "
            f"{defaults.DEEP_MLP_WIDTH} by default (depth ≥ 20)",
            configurable=True,
        ),
        ModelKind(
            "cnn",
            "cnn",
            f"configurable conv net: `depth` 3×3 (`kernel`) same-padded convolutions of `channels` (an int or a list; "
            f"default {defaults.CNN_DEPTH} × {defaults.CNN_CHANNELS}), a 2×2 max-pool after every `pool_every`-th "
            "(0: none) or after the convolutions a list names, `residual` / `normalization` as the MLP's, then "
            "GlobalAvgPool → Dense(classes, softmax); any image shape",
        ),
        ModelKind(
            "mnist_cnn",
            "cnn",
            f"{describe_stack(MNIST_CNN)}; takes the channels it is given (grey 1, colour 3), "
            f"images of at least {_least_side(MNIST_CNN)}×{_least_side(MNIST_CNN)}",
            layers=MNIST_CNN,
        ),
    ]
}


# model.normalization / grid.normalization: what normalizes each hidden layer's pre-activation, before its activation
NORMALIZATIONS: dict[str, str] = {
    "none": "no normalization",
    "batchnorm": "BatchNorm (Ioffe & Szegedy 2015): batch statistics in training, moving averages (momentum "
                 f"{defaults.BN_MOMENTUM}) at evaluation; ε = {defaults.NORM_EPSILON}; learned scale γ = 1 and shift β = 0",
    "layernorm": f"LayerNorm (Ba et al. 2016): each example's statistics over the layer's units (a conv layer's: over "
                 "height, width and channels, with a scale and shift per channel, as GroupNorm with one group, Wu & He "
                 f"2018); ε = {defaults.NORM_EPSILON}; learned scale γ = 1 and shift β = 0",
}


@dataclass(frozen=True)
class Block:
    """One residual block of an MLP: hidden layers ``first`` … ``last`` (0-based positions in ``hidden``), whose last
    layer's output adds the block's input (the previous layer's output: the stream), through a projection
    ``projection`` (in, out) where the width changes (None: the identity)."""

    index: int
    first: int
    last: int
    projection: tuple[int, int] | None


@dataclass(frozen=True)
class Architecture:
    """A concrete network shape: family and hidden widths (MLP) — the CNN's stack is its kind's — and, for an MLP,
    whether its layers form residual blocks and what normalizes them.

    A residual MLP (``residual``) is a pre-activation residual network (He et al. 2016, "Identity mappings"): the
    first hidden layer is a plain Dense layer (the stem); then blocks of ``block_depth`` Dense layers, each layer
    computing h_k = W_k·φ(N(h_{k−1})) + b_k, and a block's last layer adding the block's input h (or P·h, a
    projection, where the width changes): h ← h + branch(h). A hidden layer's pre-activation is N(h_k) (after the
    skip's addition), its activation φ(N(h_k)); the output layer reads the last one. With one-layer blocks this is
    Yang & Schoenholz 2017's reduced residual network, h_{l+1} = h_l + W·φ(h_l) + b."""

    kind: str
    family: str
    hidden: tuple[int, ...] = ()
    residual: bool = False
    block_depth: int = defaults.BLOCK_DEPTH
    normalization: str = "none"
    stack: tuple[Layer, ...] = ()  # a configurable CNN's layers (``cnn_stack``); presets take their kind's

    @property
    def units(self) -> tuple[int, ...]:
        """What residual blocks and normalization count over: an MLP's hidden widths, a CNN's convolutions' channels."""
        if self.family == "cnn":
            return tuple(layer.filters for layer in self.layers if isinstance(layer, Conv))
        return self.hidden

    @property
    def plain(self) -> bool:
        """No residual blocks and no normalization: the network the plain mean-field theory and LSUV describe."""
        return not self.residual and self.normalization == "none"

    @property
    def blocks(self) -> tuple[Block, ...]:
        """The residual blocks, in order (none unless ``residual``)."""
        if not self.residual:
            return ()
        m, out, units = self.block_depth, [], self.units
        for b, first in enumerate(range(1, len(units), m)):
            last = first + m - 1
            w_in, w_out = units[first - 1], units[last]
            out.append(Block(b, first, last, None if w_in == w_out else (w_in, w_out)))
        return tuple(out)

    @property
    def norm_params(self) -> int:
        """Learned normalization parameters per trial: a scale and a shift per unit of every hidden layer."""
        return 0 if self.normalization == "none" else 2 * sum(self.units)

    @property
    def norm_buffers(self) -> int:
        """Numbers of state besides the learned ones per trial: BatchNorm's moving mean and variance per unit."""
        return 2 * sum(self.units) if self.normalization == "batchnorm" else 0

    @property
    def projection_params(self) -> int:
        """A projection's kernel: in × out (a CNN's: a 1×1 convolution, no biases)."""
        return sum(i * o for b in self.blocks if b.projection for i, o in [b.projection])

    @property
    def layers(self) -> tuple[Layer, ...]:
        """The hidden layers as data, input first: the CNN kind's stack, or one Dense layer per MLP width.
        The output layer, ``Dense(classes)`` with softmax, follows every stack."""
        if self.family == "cnn":
            return self.stack or MODEL_KINDS[self.kind].layers
        return tuple(Dense(units) for units in self.hidden)

    @property
    def label(self) -> str:
        if self.stack:
            units = self.units
            shape = f"{len(units)}x{units[0]}" if len(set(units)) == 1 else "x".join(map(str, units))
            pools = sum(isinstance(layer, Pool) for layer in self.stack)
            extras = [f"residual×{self.block_depth}"] * self.residual + [self.normalization] * (self.normalization != "none")
            return f"cnn[{shape}{f', {pools} pools' if pools else ''}]" + (f"({', '.join(extras)})" if extras else "")
        if self.family == "cnn" or not self.hidden:
            return self.kind
        if len(self.hidden) > 2 and len(set(self.hidden)) == 1:
            label = f"{self.kind}[{len(self.hidden)}x{self.hidden[0]}]"  # 30 layers of 256: deep_mlp[30x256]
        else:
            label = f"{self.kind}[{'x'.join(map(str, self.hidden))}]"
        extras = [f"residual×{self.block_depth}"] * self.residual + [self.normalization] * (self.normalization != "none")
        return label + (f"({', '.join(extras)})" if extras else "")


def cnn_stack(depth: int, channels: int | list[int], kernel: int, pool_every: int | list[int]) -> tuple[Layer, ...]:
    """A configurable CNN's layers: ``depth`` same-padded ``kernel``×``kernel`` convolutions of ``channels`` (one
    for all, or one per convolution), a 2×2 max-pool after every ``pool_every``-th convolution (0: none; a list: after
    the convolutions it names, counted from 1), then the global-average-pool head. ValueError: a user-facing message."""
    widths = [channels] * depth if isinstance(channels, int) else list(channels)
    if len(widths) != depth:
        raise ValueError(f"model.channels lists {len(widths)} convolutions' channels but depth is {depth}: "
                         "give one number for all, or one per convolution.")
    if isinstance(pool_every, int):
        after = set(range(pool_every, depth + 1, pool_every)) if pool_every else set()
    else:
        after = set(pool_every)
        wrong = sorted(p for p in after if not 1 <= p <= depth)
        if wrong:
            raise ValueError(f"model.pool_every names convolution {wrong[0]}; the convolutions are 1…{depth}.")
    layers: list[Layer] = []
    for i, c in enumerate(widths, start=1):
        layers.append(Conv(c, kernel, "same"))
        if i in after:
            layers.append(Pool(2))
    return (*layers, GlobalAvgPool())


def resolve_architecture(
    kind: str, hidden: list[int] | None = None, depth: int | None = None, width: int | None = None,
    residual: bool = False, block_depth: int = defaults.BLOCK_DEPTH, normalization: str = "none",
    stack: tuple[Layer, ...] = (),
) -> Architecture:
    """Concrete widths (and residual blocks, normalization) for a model kind; raises ValueError with a user-facing
    message. ``stack``: a configurable CNN's layers (``cnn_stack``)."""
    mk = MODEL_KINDS[kind]
    if kind == "cnn":
        return _resolve_cnn(stack, residual, block_depth, normalization)
    if mk.family != "mlp" and (residual or normalization != "none"):
        raise ValueError(f"model '{kind}' is a fixed preset without residual blocks or normalization; "
                         f"residual and normalization apply to the MLP kinds "
                         f"({', '.join(k for k, m in MODEL_KINDS.items() if m.family == 'mlp')}).")
    plain = _resolve_widths(kind, mk, hidden, depth, width)
    arch = Architecture(plain.kind, plain.family, plain.hidden, residual, block_depth, normalization)
    d = len(arch.hidden)
    if residual and (d < 1 + block_depth or (d - 1) % block_depth):
        fits = [1 + block_depth * k for k in (max(1, (d - 1) // block_depth), max(1, (d - 1) // block_depth) + 1)]
        raise ValueError(f"residual: true with block_depth {block_depth} needs 1 + {block_depth}·L hidden layers "
                         f"(a first Dense layer, then L ≥ 1 blocks of {block_depth}); got {d}: "
                         f"try depth {' or '.join(map(str, sorted(set(fits))))}.")
    return arch


def _resolve_cnn(stack: tuple[Layer, ...], residual: bool, block_depth: int, normalization: str) -> Architecture:
    arch = Architecture("cnn", "cnn", (), residual, block_depth, normalization, stack)
    n = len(arch.units)
    if residual:
        if n < 1 + block_depth or (n - 1) % block_depth:
            raise ValueError(f"residual: true with block_depth {block_depth} needs 1 + {block_depth}·L convolutions "
                             f"(a first convolution, then L ≥ 1 blocks of {block_depth}); got depth {n}.")
        ends = {0} | {b.last for b in arch.blocks}  # a pool may follow the stem or a block, never split one
        convs = 0
        for layer in stack:
            if isinstance(layer, Conv):
                convs += 1
            elif isinstance(layer, Pool) and convs - 1 not in ends:
                raise ValueError(f"model.pool_every puts a pool after convolution {convs}, inside a residual block: "
                                 f"pools go after convolution 1 or a block's last ({', '.join(str(e + 1) for e in sorted(ends))}).")
    return arch


def _resolve_widths(kind: str, mk: ModelKind, hidden: list[int] | None, depth: int | None,
                    width: int | None) -> Architecture:
    if not mk.configurable:
        if hidden is not None or depth is not None or width is not None:
            raise ValueError(
                f"model '{kind}' has a fixed shape ({mk.description}); hidden/depth/width apply only to "
                "'mlp' and 'deep_mlp'."
            )
        return Architecture(kind, mk.family, mk.hidden or ())
    if hidden is not None:
        return Architecture(kind, mk.family, tuple(hidden))
    if kind == "deep_mlp":
        d, w = depth or defaults.DEEP_MLP_DEPTH, width or defaults.DEEP_MLP_WIDTH
        if d < 20:
            raise ValueError(f"deep_mlp needs depth ≥ 20, got {d}; use 'mlp' for shallower networks.")
    else:
        d = depth if depth is not None else len(defaults.MLP_HIDDEN)
        w = width if width is not None else defaults.MLP_HIDDEN[0]
    return Architecture(kind, mk.family, (w,) * d)


def fixup_multiplier(arch: Architecture, layer: int) -> float:
    """Fixup's factor on a He-normal draw for kernel ``layer`` (hidden layers 0…, the output layer last): 0 for each
    residual branch's last layer and the output layer, L^(−1/(2m−2)) for the branches' other layers (L blocks of m),
    1 for the first layer (and, separately, the projections)."""
    blocks = arch.blocks
    if layer >= len(arch.units):
        return 0.0
    for b in blocks:
        if b.first <= layer <= b.last:
            return 0.0 if layer == b.last else len(blocks) ** (-1.0 / (2 * arch.block_depth - 2))
    return 1.0


def branch_layers(arch: Architecture) -> dict[int, int]:
    """Hidden layer → the residual block whose branch it is in (the first layer, the stem, is in none)."""
    return {layer: b.index for b in arch.blocks for layer in range(b.first, b.last + 1)}


def branch_scalars(arch: Architecture, initializer: str) -> int:
    """Learned scalars Fixup / SkipInit add per trial: a multiplier (gate) per residual branch, and Fixup's bias
    before each of the branches' Dense layers."""
    if initializer not in ("fixup", "skipinit") or not arch.residual:
        return 0
    return len(arch.blocks) + (len(branch_layers(arch)) if initializer == "fixup" else 0)


class NetKind(str, Enum):
    """How the engine builds a group's networks (recorded in checkpoints)."""

    PACKED_MLP = "packed_mlp"  # T MLP trials as one computation (batched matmuls)
    KERAS = "keras"  # one Keras model per trial: the CNN, and every trial under --no-pack


def net_kind(arch: Architecture, pack: bool) -> NetKind:
    return NetKind.PACKED_MLP if pack and arch.family == "mlp" else NetKind.KERAS
