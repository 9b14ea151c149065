"""Every default of initlab, in one visible place.

Config fields that a YAML file leaves out take these values; the resolved config
written into each run directory shows them all, so a run never depends on a
default that later changes.
"""

from __future__ import annotations

import os

# --- dataset -----------------------------------------------------------------
DATASET = "mnist_sample"
VALIDATION_SPLIT = 0.1
SPLIT_SEED = 0  # the validation split is the same for every trial of a sweep
DATA_DIR_ENV = "INITLAB_DATA_DIR"
SYNTHETIC_TRAIN = 2000
SYNTHETIC_TEST = 500

# --- model ---------------------------------------------------------------------
MODEL_KIND = "mlp"
MLP_HIDDEN = (256, 256)
DEEP_MLP_DEPTH = 30
DEEP_MLP_WIDTH = 256

# --- grid ----------------------------------------------------------------------
SEEDS = (0,)

# --- training ------------------------------------------------------------------
EPOCHS = 5
BATCH_SIZE = 128
OPTIMIZER = "adam"
LEARNING_RATE = 0.001
MOMENTUM = 0.0  # sgd only
EVAL_BATCH_SIZE = 2048  # evaluation batch size does not change results, only speed
ACCURACY_THRESHOLDS = (0.9, 0.95, 0.97)  # "epochs to reach" columns
PROBE_SIZE = 256  # examples in the fixed probe batch (per-layer diagnostics, LSUV)
JACOBIAN_EXAMPLES = 4  # probe examples whose input-output Jacobian spectrum `initlab probe` computes
DIAGNOSTICS = True  # record layers.csv (and step_layers.csv, histograms.npz) for every trial
STEP_POINTS_PER_EPOCH = 50  # steps.csv: by default a row every ceil(steps per epoch / 50) steps
STEP_DIAGNOSTICS_EPOCHS = 1  # per-layer activation statistics at the logged steps of the first epoch(s)
# ... measured on the first 32 examples of the probe batch: 32 × width values a layer (8,192 for 256 units,
# 692,224 for the CNN's first conv) pin mean, std and the 2–98 % percentiles down, and the forward pass and
# statistics at ~50 steps cost an eighth of the full batch's (the MNIST CNN's first epoch: 24 s → 3 s)
STEP_PROBE_SIZE = 32
INIT_TRAIN_EXAMPLES = 10_000  # epoch 0's training loss/accuracy: on the first 10,000 training examples
DETERMINISTIC = True  # op determinism: same config + seed => identical tables on CPU
# Compile each packed training step with XLA: measured 19 s -> 15 s for a 16-trial MNIST epoch on
# 2 CPU cores. Numbers stay independent of which trials share a group (tests/test_packed.py), so a
# resumed, regrouped sweep still matches an uninterrupted one bit for bit. INITLAB_XLA=0 turns it off.
XLA = os.environ.get("INITLAB_XLA", "1") != "0"

# --- memory --------------------------------------------------------------------------
# resources.memory: the budget an execution group must fit in (with the shared data), in bytes or a size
# such as "2GB" / "512MiB"; "auto" takes MEMORY_FRACTION of the available host RAM (CPU) or of the free
# device memory (GPU). Groups larger than it are split; the estimate is init_lab/run/memory.py's.
MEMORY = "auto"
# TensorFlow's resident memory once imported on CPU (measured 0.63 GB, TF 2.21; XLA compiling a packed step adds
# 0.1-1 GB more with depth, which MEMORY_FRACTION leaves room for): counted once against a host budget
TF_RUNTIME_BYTES = 650 * 2**20
MEMORY_FRACTION = 0.5  # of MemAvailable (CPU) or free device memory (GPU): room for TensorFlow and estimate error
GPU_MEMORY_FALLBACK = 8 * 2**30  # auto on a GPU whose memory nvidia-smi cannot report

# --- checkpoints -------------------------------------------------------------------
KEEP_FINAL_STATE = True  # keep each group's final state so a finished sweep can be extended to more epochs
# On --resume, --set may change only these fields (plus training.epochs, upwards): they do not change
# what any trial computes. Everything else is refused, naming the field.
RESUME_MAY_CHANGE = ("name", "device", "resources", "checkpoints", "training.thresholds")

# --- sweep / output --------------------------------------------------------------
RUNS_DIR = "runs"
CONFIRM_TRIALS = 200  # sweeps larger than this ask first (or need --yes)
DEVICE = "auto"

# --- input preprocessing -------------------------------------------------------------
# dataset.standardize: standardise each pixel by the training split's mean and std (LeCun 1998's and
# SELU's zero-mean, unit-variance input). Off: inputs stay [0, 1] pixels, the default everywhere.
STANDARDIZE = False
