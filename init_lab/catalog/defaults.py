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
SYNTHETIC_SHAPE = (28, 28)  # one synthetic image: (H, W) grey or (H, W, C), e.g. (32, 32, 3) for CIFAR-shaped tests
SYNTHETIC_CLASSES = 10
# digits (scikit-learn's 1,797 8×8 images) has no split of its own: 20 % of each class is the test set, drawn
# once by this seed (init_lab/catalog/digits.py), so every run and every machine tests on the same 360 images
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0

# --- model ---------------------------------------------------------------------
MODEL_KIND = "mlp"
MLP_HIDDEN = (256, 256)
DEEP_MLP_DEPTH = 30
DEEP_MLP_WIDTH = 256
# the configurable conv net (model.kind: cnn): same-padded convolutions, then a global-average-pool head
CNN_DEPTH = 6
CNN_CHANNELS = 16
CNN_KERNEL = 3
CNN_POOL_EVERY = 0  # a 2×2 max-pool after every this many convolutions (0: none)
# residual MLPs (model.residual): Dense layers per residual block (model.block_depth)
BLOCK_DEPTH = 2
NORMALIZATION = "none"  # model.normalization: none | batchnorm | layernorm
# BatchNorm / LayerNorm constants: Keras' defaults (keras.layers.BatchNormalization, LayerNormalization), so the packed
# MLP and the one-model Keras reference normalize alike
BN_MOMENTUM = 0.99
NORM_EPSILON = 1e-3
# a residual block's projection (where the width changes) draws its kernel from layer_seed(seed, PROJECTION_SEED_BASE
# + block): a stream of its own, so the hidden and output layers keep the draws they have without residual blocks
PROJECTION_SEED_BASE = 10_000

# --- grid ----------------------------------------------------------------------
SEEDS = (0,)

# --- training ------------------------------------------------------------------
EPOCHS = 5
BATCH_SIZE = 128
OPTIMIZER = "adam"
LEARNING_RATE = 0.001
MOMENTUM = 0.0  # sgd only
EVAL_BATCH_SIZE = 2048  # speed, and float rounding only (a 10k-image CNN mean loss moved in the 7th digit at 128); fastest measured
ACCURACY_THRESHOLDS = (0.9, 0.95, 0.97)  # "epochs to reach" columns
PROGRAM_CACHE_ENTRIES = 8  # Keras structures whose model, optimizer and traces a sweep keeps for later groups
PROGRAM_CACHE_BYTES = 64 * 2**20  # … whose variables and optimizer state come to at most this in all
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
# XLA's compiled programs are kept on disk and reused by the next process that compiles the same computation
# (TensorFlow's persistent compilation cache): a 16-trial MNIST group's two programs took 0.8 s to compile, 0.3 s to
# load. INITLAB_XLA_CACHE names the directory, or "off"; by default one folder per TensorFlow version and CPU under
# $XDG_CACHE_HOME/initlab/xla (~/.cache/...), its oldest files removed when it holds more than XLA_CACHE_BYTES.
XLA_CACHE_ENV = "INITLAB_XLA_CACHE"
XLA_CACHE_BYTES = 512 * 2**20
# Gzipped IDX files (MNIST, Fashion-MNIST) decompressed once and kept as .npy files that later processes map
# (catalog.caches): full MNIST 0.21 s -> 0.02 s a process. INITLAB_DATA_CACHE names the directory, or "off"; by
# default $XDG_CACHE_HOME/initlab/data (~/.cache/...), its oldest files removed past DATA_CACHE_BYTES.
DATA_CACHE_ENV = "INITLAB_DATA_CACHE"
DATA_CACHE_BYTES = 1024 * 2**20

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
# One writer per run directory (init_lab/run/lock.py): an OS lock on RUN/.lock. Where the file system has no
# working locks (NFS without lockd: flock fails with ENOLCK), setting this variable to 1 runs without one.
NO_LOCK_ENV = "INITLAB_NO_LOCK"

# --- how long a sweep trains, at least (init_lab/run/duration.py) ------------------------
# Sweeps whose estimate exceeds this ask first (or need --yes): a typo such as epochs: 100000 is not a silent,
# days-long run. The shipped configs' estimates stay below (the largest, the Glorot 2010 reproduction: 15 min
# estimated, 41 min measured on 2 cores; the quickstart 3 s estimated, 8 s of training measured).
CONFIRM_SECONDS = 3600
# Floating-point throughput the estimate assumes: optimistic on purpose, so the estimate is a lower bound. The
# packed step measured 154 GFLOP/s on this project's 2 CPU cores (71 % of its matmul peak); a GPU: an H100's
# float32 peak, about 60 TFLOP/s.
CPU_FLOPS_PER_CORE = 100e9
GPU_FLOPS = 60e12

# --- initlab init ----------------------------------------------------------------
STARTER_NAME = "experiment"  # `initlab init` with no NAME writes ./experiment.yaml
STARTER_FROM = "quickstart"  # ... copied from this shipped config (--from)

# --- verdicts over seeds (init_lab/report/verdicts.py) ----------------------------------
COMPARE_AXIS = "initializer"  # cells are compared within groups that differ in this axis only
CONFIDENCE = 0.95  # of every confidence interval: a cell's mean, a paired difference
ALPHA = 0.05  # the tests' level: a Holm-adjusted p ≥ ALPHA against the group's best reads "tied with best"
POWER = 0.8  # min_detectable and "seeds needed": the difference a paired t-test finds this often
# From this many values a confidence interval is SciPy's BCa bootstrap, below it Student's t. Issue 23 asked for the
# bootstrap from 6; it covers less than its nominal 95 % at few seeds — measured on normal data (2000-3000 samples
# each, ±0.5 %): 87 % at n = 6, 91 % at 10, 92 % at 20, 94 % at 30 and 50 — where t's is exact (94.6 % at 3, 95.6 % at
# 5 measured). So t up to 29 values, the bootstrap from 30, where it is within a point of 95 %. Tie marks use the
# paired t-test either way.
BOOTSTRAP_MIN_N = 30
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0  # the resampling is seeded: the same run gives the same report every time
CHANCE_FACTOR = 1.5  # an accuracy cell whose mean is below 1.5 × chance (1/classes) is "at chance": drawn apart
SHADE_DECADES = 3  # heatmaps colour the gap to the group's best on a log scale spanning this many decades

# --- input preprocessing -------------------------------------------------------------
# dataset.standardize: standardise each pixel of grey images (each channel of colour ones) by the training
# split's mean and std (LeCun 1998's and SELU's zero-mean, unit-variance input). Off: inputs stay [0, 1] pixels,
# the default everywhere.
STANDARDIZE = False

# --- biases (model.bias_std, grid.bias_std) ------------------------------------------
# σ_b: every layer's biases drawn N(0, σ_b²), seeded like the kernels. 0: every bias starts at exactly 0, as before
# the option existed (and the mean-field theory's σ_b² = 0)
BIAS_STD = 0.0
# the phase diagram (report/phase.py): trainable depth ≈ this many correlation depth scales ξ_c
# (Schoenholz et al. 2017, §5 and Figs. 5–6: networks train up to about 6·ξ_c layers)
PHASE_XI_FACTOR = 6.0

# --- progress ------------------------------------------------------------------------------------
PLAIN_PROGRESS_SECONDS = 30.0  # in a log (stdout not a terminal), a long epoch prints how far it got this often
