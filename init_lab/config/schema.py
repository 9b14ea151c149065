"""Sweep config models: the typed, validated form of a sweep config (DESIGN §3).

One pydantic model per section (dataset, model, grid, training, resources, checkpoints) under
:class:`SweepConfig`, with their field validators: every check of a value lives here, and says what is
allowed. Reading YAML, files and ``--set`` overrides into these models is ``config.loading``; turning
validation errors into messages with file and line is ``config.messages``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model, field_validator, model_validator

from init_lab.catalog import defaults
from init_lab.catalog.activations import ACTIVATIONS
from init_lab.catalog.datasets import DATASETS
from init_lab.catalog.errors import did_you_mean
from init_lab.catalog.initializers import INITIALIZERS
from init_lab.catalog.models import MODEL_KINDS, Architecture, cnn_fits, cnn_stack, resolve_architecture
from init_lab.catalog.registry import Choice
from init_lab.catalog.values import NonNegFloat, NormalizationName, OptimizerName, PosFloat, PosInt, name_in, number
from init_lab.config.messages import _show
from init_lab.runschema.axes import AXES

DEVICES = ("auto", "cpu", "gpu")

InitializerChoice = Annotated[Choice, BeforeValidator(INITIALIZERS.resolve)]
ActivationChoice = Annotated[Choice, BeforeValidator(ACTIVATIONS.resolve)]


SIZE_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
              "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
_SIZE_RE = re.compile(r"^(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*([A-Za-z]*)$")


def parse_memory(value: Any) -> int | None:
    """A memory budget in bytes from ``resources.memory``: a number of bytes, a size such as "2GB", "1.5 GiB"
    or "512MiB" (KB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB of 1024; case does not matter), or None
    for "auto". The one parser of the option: the schema validates with it, the sweep budgets with it.
    Raises ValueError with the allowed forms (and the nearest unit) on anything else."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    allowed = "a size such as 2GB, 1.5GiB or 512MiB, a number of bytes, or auto"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number, unit = float(value), "B"
    elif isinstance(value, str) and (match := _SIZE_RE.match(value.strip())):
        number, unit = float(match.group(1) + (match.group(2) or "")), match.group(3) or "B"
    else:
        hint = did_you_mean(value, ["auto"]) if isinstance(value, str) else ""
        raise ValueError(f"expected {allowed}; got {value!r}.{hint}")
    scale = next((v for k, v in SIZE_UNITS.items() if k.lower() == unit.lower()), None)
    if scale is None:
        raise ValueError(f"unknown size unit '{unit}' in {value!r}.{did_you_mean(unit, SIZE_UNITS)} "
                         f"Allowed: {', '.join(SIZE_UNITS)} (expected {allowed}).")
    if not number * scale >= 1 or number * scale == float("inf"):
        raise ValueError(f"must be at least 1 byte and finite ({allowed}); got {value!r}.")
    return int(number * scale)


def _memory_setting(value: Any) -> int | str:
    """Validate ``resources.memory``, keeping it as written ("2GB" stays "2GB" in the resolved config)."""
    parse_memory(value)
    return value if isinstance(value, str) else int(value)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, arbitrary_types_allowed=True)


class DatasetConfig(_Section):
    name: Annotated[str, BeforeValidator(name_in("dataset", DATASETS))] = defaults.DATASET
    validation_split: Annotated[float, BeforeValidator(number), Field(gt=0, lt=1)] = defaults.VALIDATION_SPLIT
    path: str | None = None
    train_size: PosInt | None = None  # use only this many training examples (before the split)
    test_size: PosInt | None = None
    split_seed: int = defaults.SPLIT_SEED
    synthetic_train: PosInt = defaults.SYNTHETIC_TRAIN  # sizes of the 'synthetic' dataset
    synthetic_test: PosInt = defaults.SYNTHETIC_TEST
    # ... its image shape, [H, W] grey or [H, W, C] (e.g. [32, 32, 3]: CIFAR-shaped), and its classes
    synthetic_shape: list[PosInt] = Field(default_factory=lambda: list(defaults.SYNTHETIC_SHAPE))
    synthetic_classes: Annotated[int, Field(ge=2)] = defaults.SYNTHETIC_CLASSES
    # mean 0, std 1 (training split's statistics): per pixel for grey images, per channel for colour ones
    standardize: bool = defaults.STANDARDIZE

    @field_validator("synthetic_shape")
    @classmethod
    def _image_shape(cls, shape: list[int]) -> list[int]:
        if len(shape) not in (2, 3):
            raise ValueError(f"an image shape is [height, width] (grey) or [height, width, channels]; got {shape}.")
        return shape

    @model_validator(mode="after")
    def _synthetic_options(self) -> DatasetConfig:
        if self.name != "synthetic" and (tuple(self.synthetic_shape) != defaults.SYNTHETIC_SHAPE
                                         or self.synthetic_classes != defaults.SYNTHETIC_CLASSES):
            raise ValueError(f"synthetic_shape and synthetic_classes are options of dataset 'synthetic'; "
                             f"'{self.name}' has its own ({self.info.shape_label}, {self.info.classes} classes).")
        if self.name == "synthetic" and self.synthetic_classes > self.synthetic_train:
            raise ValueError(f"synthetic_classes {self.synthetic_classes} exceeds synthetic_train "
                             f"{self.synthetic_train}: every class needs a training example.")
        return self

    @property
    def info(self):  # -> DatasetInfo
        return DATASETS[self.name]

    @property
    def image_shape(self) -> tuple[int, ...]:
        """One image as loaded: (H, W) grey or (H, W, C) colour."""
        return tuple(self.synthetic_shape) if self.name == "synthetic" else self.info.image_shape

    @property
    def classes(self) -> int:
        return self.synthetic_classes if self.name == "synthetic" else self.info.classes

    @property
    def sizes(self) -> tuple[int, int]:
        """(training, test) examples before train_size / test_size: the dataset's nominal ones."""
        return (self.synthetic_train, self.synthetic_test) if self.name == "synthetic" else self.info.sizes


class ModelConfig(_Section):
    kind: Annotated[str, BeforeValidator(name_in("model", MODEL_KINDS))] = defaults.MODEL_KIND
    hidden: list[PosInt] | None = None
    depth: PosInt | None = None
    width: PosInt | None = None
    # σ_b: every layer's biases drawn N(0, σ_b²), seeded like the kernels (0: all biases start at 0)
    bias_std: NonNegFloat = defaults.BIAS_STD
    # residual blocks (MLP kinds): a first Dense layer, then blocks of block_depth layers around a skip
    residual: bool = False
    block_depth: PosInt = defaults.BLOCK_DEPTH
    # what normalizes every hidden layer's pre-activation, before its activation
    normalization: NormalizationName = defaults.NORMALIZATION
    # the configurable conv net (kind: cnn): channels per convolution (one for all, or a list), window, pooling
    channels: PosInt | list[PosInt] | None = None
    kernel: PosInt | None = None
    pool_every: Annotated[int, Field(ge=0)] | list[PosInt] | None = None

    @model_validator(mode="after")
    def _shape(self) -> ModelConfig:
        if self.hidden is not None and (self.depth is not None or self.width is not None):
            raise ValueError("give either 'hidden: [..]' or 'depth' and 'width', not both.")
        cnn_only = [f for f in ("channels", "kernel", "pool_every") if getattr(self, f) is not None]
        if cnn_only and self.kind != "cnn":
            raise ValueError(f"{', '.join(cnn_only)}: options of model kind 'cnn', not '{self.kind}'.")
        if self.kind == "cnn" and (self.hidden is not None or self.width is not None):
            raise ValueError("model kind 'cnn' takes depth (convolutions) and channels, not hidden / width.")
        self.architecture()
        return self

    def architecture(self, depth: int | None = None, width: int | None = None, residual: bool | None = None,
                     normalization: str | None = None) -> Architecture:
        """The concrete shape, with depth/width/residual/normalization from a grid axis taking precedence over this
        section."""
        blocks = {"residual": self.residual if residual is None else residual, "block_depth": self.block_depth,
                  "normalization": normalization or self.normalization}
        if self.kind == "cnn":
            stack = cnn_stack(self.depth or defaults.CNN_DEPTH,
                              defaults.CNN_CHANNELS if self.channels is None else self.channels,
                              self.kernel or defaults.CNN_KERNEL,
                              defaults.CNN_POOL_EVERY if self.pool_every is None else self.pool_every)
            return resolve_architecture(self.kind, stack=stack, **blocks)
        if depth is None and width is None:
            return resolve_architecture(self.kind, self.hidden, self.depth, self.width, **blocks)
        if self.hidden:
            depth = depth or len(self.hidden)
            width = width or self.hidden[0]
        return resolve_architecture(self.kind, None, depth or self.depth, width or self.width, **blocks)


class _FixedAxes(_Section):
    """The grid's fixed axes; every optional axis (``runschema.axes.AXES``) is a field of ``GridConfig``."""

    initializer: list[InitializerChoice] = Field(min_length=1)
    activation: list[ActivationChoice] = Field(min_length=1)
    seed: list[Annotated[int, Field(ge=0)]] = Field(default_factory=lambda: list(defaults.SEEDS), min_length=1)

    @field_validator("*")
    @classmethod
    def _no_duplicates(cls, values: list[Any] | None) -> list[Any] | None:
        if values is not None:
            seen = [v for i, v in enumerate(values) if v in values[:i]]
            if seen:
                raise ValueError(f"duplicated grid value {_show(seen[0])}: each value of an axis must be distinct.")
        return values


# grid.<axis>: a non-empty list of distinct values of the axis's type, or absent (the section's value for all)
GridConfig = create_model(
    "GridConfig", __base__=_FixedAxes, __module__=__name__,
    **{a.name: (list[a.value] | None, Field(default=None, min_length=1, description=a.help)) for a in AXES},
)


class TrainingConfig(_Section):
    epochs: PosInt = defaults.EPOCHS
    batch_size: PosInt = defaults.BATCH_SIZE
    optimizer: OptimizerName = defaults.OPTIMIZER
    learning_rate: PosFloat = defaults.LEARNING_RATE
    momentum: Annotated[float, BeforeValidator(number), Field(ge=0, lt=1)] = defaults.MOMENTUM
    thresholds: list[Annotated[float, BeforeValidator(number), Field(gt=0, le=1)]] = Field(
        default_factory=lambda: list(defaults.ACCURACY_THRESHOLDS)
    )
    deterministic: bool = defaults.DETERMINISTIC
    diagnostics: bool = defaults.DIAGNOSTICS  # per-layer signals: layers.csv, step_layers.csv, histograms.npz
    # steps.csv: a row every this many optimizer steps (None: about STEP_POINTS_PER_EPOCH rows per epoch)
    log_every_steps: PosInt | None = None
    # step_layers.csv and activation histograms at the logged steps of the first this many epochs (0: none)
    step_diagnostics_epochs: Annotated[int, Field(ge=0)] = defaults.STEP_DIAGNOSTICS_EPOCHS

    @model_validator(mode="after")
    def _step_diagnostics_need_diagnostics(self) -> TrainingConfig:
        if not self.diagnostics and self.step_diagnostics_epochs and "step_diagnostics_epochs" in self.model_fields_set:
            raise ValueError("step_diagnostics_epochs records per-layer statistics: it needs diagnostics: true "
                             "(or set step_diagnostics_epochs: 0).")
        return self

    @model_validator(mode="before")
    @classmethod
    def _no_step_diagnostics_by_default_without_diagnostics(cls, data: Any) -> Any:
        """diagnostics: false leaves step_diagnostics_epochs at 0, so the resolved config.yaml reads back."""
        off = isinstance(data, dict) and str(data.get("diagnostics")).lower() in ("false", "0", "no", "off")
        return {**data, "step_diagnostics_epochs": 0} if off and "step_diagnostics_epochs" not in data else data


class ResourcesConfig(_Section):
    """What an execution group may use: its memory budget (any executor; README: Memory), and what one
    Ray task asks the cluster for (--executor ray). None of it changes what a trial computes."""

    memory: Annotated[int | str, BeforeValidator(_memory_setting)] = defaults.MEMORY  # bytes, "2GB", or auto
    cpus: Annotated[float, BeforeValidator(number), Field(gt=0)] = 1.0
    gpus: Annotated[float, BeforeValidator(number), Field(ge=0)] = 0.0


class CheckpointsConfig(_Section):
    """Epoch checkpoints (README: Checkpoints): where they go and whether final states stay."""

    keep_final: bool = defaults.KEEP_FINAL_STATE  # keep each group's last state: extend the sweep later
    storage: str | None = None  # a directory the Ray workers share (default: the run directory's checkpoints/)


class SweepConfig(_Section):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    grid: GridConfig
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    device: Annotated[str, BeforeValidator(name_in("device", DEVICES))] = defaults.DEVICE
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    checkpoints: CheckpointsConfig = Field(default_factory=CheckpointsConfig)

    @model_validator(mode="after")
    def _axes_fit_model(self) -> SweepConfig:
        if self.model.block_depth != defaults.BLOCK_DEPTH and not (self.model.residual or True in (self.grid.residual or [])):
            raise ValueError("model.block_depth is the Dense layers per residual block: it needs model.residual: true "
                             "(or true among grid.residual).")
        if (self.grid.depth or self.grid.width) and not MODEL_KINDS[self.model.kind].configurable:
            raise ValueError(f"grid axes depth/width need model kind 'mlp' or 'deep_mlp', not '{self.model.kind}'.")
        for d in self.grid.depth or [None]:
            for w in self.grid.width or [None]:
                for r in self.grid.residual or [None]:
                    for norm in self.grid.normalization or [None]:
                        arch = self.model.architecture(d, w, r, norm)
                        self._initializers_fit(arch)
                        if not arch.plain and any(c.name == "lsuv" for c in self.grid.initializer):
                            raise ValueError("initializer 'lsuv' rescales a plain network layer by layer; "
                                             f"{arch.label} has residual blocks or normalization: choose "
                                             "another initializer, or residual: false and normalization: none.")
        arch = self.model.architecture()
        too_small = cnn_fits(self.dataset.image_shape, self.model.kind, arch.layers) if arch.family == "cnn" else None
        if too_small:
            raise ValueError(f"model '{self.model.kind}' on dataset '{self.dataset.name}': {too_small}.")
        return self

    def _initializers_fit(self, arch: Architecture) -> None:
        """Initializers defined for some kernels only: ZerO for Dense kernels; delta-orthogonal for convolutions that do
        not reduce channels (an orthogonal centre tap c_in × c_out needs c_in ≤ c_out)."""
        names = {c.name for c in self.grid.initializer}
        for name in sorted(names & {"fixup", "skipinit"}):
            if not arch.residual:
                raise ValueError(f"initializer '{name}' initializes residual branches; {arch.label} has none: set "
                                 "model.residual: true (or grid.residual: [true]), or choose another initializer.")
        if "fixup" in names and arch.block_depth < 2:
            raise ValueError("initializer 'fixup' scales branch layers by L^(−1/(2m−2)): it needs block_depth m ≥ 2.")
        if "fixup" in names and arch.normalization != "none":
            raise ValueError(f"initializer 'fixup' trains residual nets without normalization (it replaces it); "
                             f"{arch.label} has {arch.normalization}: use normalization: none, or skipinit.")
        if "zero_init" in names and arch.family == "cnn":
            raise ValueError(f"initializer 'zero_init' (ZerO) is built here for Dense kernels only; model "
                             f"'{self.model.kind}' has convolutions: use an MLP kind, or another initializer.")
        if "delta_orthogonal" in names and arch.family == "cnn":
            c_in = self.dataset.image_shape[2] if len(self.dataset.image_shape) == 3 else 1
            convs = [layer.filters for layer in arch.layers if hasattr(layer, "filters")]
            for i, c_out in enumerate(convs):
                if c_in > c_out:
                    raise ValueError(f"initializer 'delta_orthogonal' needs c_in ≤ c_out in every convolution; "
                                     f"convolution {i + 1} maps {c_in} channels to {c_out}: give it at "
                                     f"least {c_in} channels, or use another initializer.")
                c_in = c_out

    def resolved(self) -> dict[str, Any]:
        """The config with every default filled in, in YAML-ready form (written to config.yaml)."""
        data = self.model_dump(mode="python")
        data["grid"]["initializer"] = [c.as_config(INITIALIZERS) for c in self.grid.initializer]
        data["grid"]["activation"] = [c.as_config(ACTIVATIONS) for c in self.grid.activation]
        data["grid"] = {k: v for k, v in data["grid"].items() if v is not None}
        return data


# each section's dotted path ("": the top level) → its model: an unknown field's message lists its fields
SECTIONS: dict[str, type[BaseModel]] = {
    "": SweepConfig,
    "dataset": DatasetConfig,
    "model": ModelConfig,
    "grid": GridConfig,
    "training": TrainingConfig,
    "resources": ResourcesConfig,
    "checkpoints": CheckpointsConfig,
}
