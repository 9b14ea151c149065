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
    """A 2-D convolution: ``filters`` output channels, a ``kernel``×``kernel`` window, stride 1, no padding."""

    filters: int
    kernel: int = 3

    @property
    def label(self) -> str:
        return f"Conv2D({self.filters},{self.kernel}×{self.kernel})"

    def output(self, shape: Shape) -> Shape:
        h, w, _ = shape
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


Layer = Conv | Pool | Dense

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
    labels = [layer.label for layer in images] + ["Flatten"] * bool(images) + [layer.label for layer in dense]
    return " → ".join([*labels, "Dense(classes, softmax)"])


def _side_after(layers: tuple[Layer, ...], side: int) -> int:
    """An image side after the stack's convolutions and pools (≤ 0: the image is too small for it)."""
    shape: Shape = (side, side, 1)
    for layer in split_stack(layers)[0]:
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


def cnn_fits(image_shape: tuple[int, ...], kind: str = "mnist_cnn") -> str | None:
    """Why images of this shape are too small for the CNN ``kind``, or None when they fit."""
    layers = MODEL_KINDS[kind].layers
    h, w = image_shape[:2]
    if min(_side_after(layers, h), _side_after(layers, w)) >= 1:
        return None
    least = _least_side(layers)
    convs = _counted([layer for layer in layers if isinstance(layer, Conv)], "convolution")
    pools = _counted([layer for layer in layers if isinstance(layer, Pool)], "pool")
    return (f"{kind}'s {convs} and {pools} need images of at least {least}×{least}; "
            f"these are {h}×{w}: use an MLP (model.kind: mlp)")


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
            "mnist_cnn",
            "cnn",
            f"{describe_stack(MNIST_CNN)}; takes the channels it is given (grey 1, colour 3), "
            f"images of at least {_least_side(MNIST_CNN)}×{_least_side(MNIST_CNN)}",
            layers=MNIST_CNN,
        ),
    ]
}


@dataclass(frozen=True)
class Architecture:
    """A concrete network shape: family and hidden widths (MLP) — the CNN's stack is its kind's."""

    kind: str
    family: str
    hidden: tuple[int, ...] = ()

    @property
    def layers(self) -> tuple[Layer, ...]:
        """The hidden layers as data, input first: the CNN kind's stack, or one Dense layer per MLP width.
        The output layer, ``Dense(classes)`` with softmax, follows every stack."""
        if self.family == "cnn":
            return MODEL_KINDS[self.kind].layers
        return tuple(Dense(units) for units in self.hidden)

    @property
    def label(self) -> str:
        if self.family == "cnn" or not self.hidden:
            return self.kind
        if len(self.hidden) > 2 and len(set(self.hidden)) == 1:
            return f"{self.kind}[{len(self.hidden)}x{self.hidden[0]}]"  # 30 layers of 256: deep_mlp[30x256]
        return f"{self.kind}[{'x'.join(map(str, self.hidden))}]"


def resolve_architecture(
    kind: str, hidden: list[int] | None = None, depth: int | None = None, width: int | None = None
) -> Architecture:
    """Concrete widths for a model kind; raises ValueError with a user-facing message."""
    mk = MODEL_KINDS[kind]
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


class NetKind(str, Enum):
    """How the engine builds a group's networks (recorded in checkpoints)."""

    PACKED_MLP = "packed_mlp"  # T MLP trials as one computation (batched matmuls)
    KERAS = "keras"  # one Keras model per trial: the CNN, and every trial under --no-pack


def net_kind(arch: Architecture, pack: bool) -> NetKind:
    return NetKind.PACKED_MLP if pack and arch.family == "mlp" else NetKind.KERAS
