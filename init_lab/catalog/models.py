"""Model families and presets (DESIGN §4): shapes as data; the engine builds the networks.

The grid's initializer and activation apply to every hidden layer; the output
layer uses the grid's initializer and softmax. Biases start at 0. Layer ``i``
(counting from 0, output last) always draws its weights from
``layer_seed(trial_seed, i)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from init_lab.catalog import defaults

CNN_STACK = ("Conv2D(32,3×3) → MaxPool(2) → Conv2D(64,3×3) → MaxPool(2) → Conv2D(64,3×3) → Flatten → Dense(64) → "
             "Dense(classes, softmax); takes the channels it is given (grey 1, colour 3), images of at least 18×18")
# the mnist_cnn stack as data, for the engine that builds it and the memory estimate that counts it: 3×3 valid
# convolutions (filters, whether a 2×2 max-pool follows), then one dense layer
CNN_CONVS, CNN_DENSE = ((32, True), (64, True), (64, False)), 64


def cnn_output_side(side: int) -> int:
    """An image side after the CNN's convolutions and pools (≤ 0: the image is too small for it)."""
    for _, pool in CNN_CONVS:
        side -= 2
        if pool:
            side //= 2
    return side


def cnn_fits(image_shape: tuple[int, ...]) -> str | None:
    """Why images of this shape are too small for the CNN, or None when they fit."""
    h, w = image_shape[:2]
    if min(cnn_output_side(h), cnn_output_side(w)) >= 1:
        return None
    least = next(n for n in range(1, 1000) if cnn_output_side(n) >= 1)
    return (f"mnist_cnn's three 3×3 convolutions and two 2×2 pools need images of at least {least}×{least}; "
            f"these are {h}×{w}: use an MLP (model.kind: mlp)")


@dataclass(frozen=True)
class ModelKind:
    name: str
    family: str  # "mlp" or "cnn"
    description: str
    hidden: tuple[int, ...] | None = None  # fixed preset widths; None: configurable
    configurable: bool = False  # accepts hidden / depth / width


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
        ModelKind("mnist_cnn", "cnn", CNN_STACK),
    ]
}


@dataclass(frozen=True)
class Architecture:
    """A concrete network shape: family and hidden widths (MLP) — the CNN's stack is fixed."""

    kind: str
    family: str
    hidden: tuple[int, ...] = ()

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
