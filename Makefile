# initlab — every target installs what it needs first, into .venv (created here).
#   make run    install what running needs, then the quickstart sweep on the bundled MNIST sample
#   make test   install that plus the test extra (pytest, hypothesis, Ray, TensorBoard, ruff, …), then the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
DATA ?= ../shared/data

.PHONY: install install-test run test mnist mnist-cnn probe reproduce reproduce-glorot reproduce-he \
	reproduce-selu reproduce-phase reproduce-table1 reproduce-bn reproduce-residual reproduce-delta reproduce-he-cnn bench clean-runs

install: $(STAMP)

install-test: $(TEST_STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "initlab needs Python >= 3.11 (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e .
	@touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(TEST_STAMP)

run: install
	$(BIN)/initlab sweep configs/quickstart.yaml

# lint (ruff), the architecture's import contracts (import-linter), a smoke sweep (about 10 s, into a temporary
# directory) whose exit status is the verdict — 1 if any trial failed, so CI fails when nothing trained — then
# the test suite
test: install-test
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	smoke=$$(mktemp -d); $(BIN)/initlab sweep configs/smoke.yaml --out "$$smoke"; status=$$?; rm -rf "$$smoke"; \
		exit $$status
	$(BIN)/python -m pytest -q

# full MNIST from a local IDX directory (offline); online, Keras downloads and caches it
mnist: install
	INITLAB_DATA_DIR=$(DATA) $(BIN)/initlab sweep configs/mnist.yaml

mnist-cnn: install
	INITLAB_DATA_DIR=$(DATA) $(BIN)/initlab sweep configs/mnist_cnn.yaml

# the probe table and figures of docs/reproductions.md (bundled sample, 5 seeds, about 1–2 min on 2 cores), and its theory
probe: install
	$(BIN)/initlab probe configs/probe_deep.yaml
	$(BIN)/initlab theory configs/probe_deep.yaml

# the paper reproductions of docs/reproductions.md: full MNIST, 3 seeds each; run directories under runs/reproduce/,
# each followed by its report (tables in the terminal, figures in RUN/report/). Times on 2 CPU cores in the docs.
REPRO := runs/reproduce
reproduce: reproduce-he reproduce-selu reproduce-glorot

reproduce-glorot: install
	INITLAB_DATA_DIR=$(DATA) $(BIN)/initlab sweep configs/glorot2010.yaml --out $(REPRO)
	$(BIN)/initlab report $(REPRO)/latest --metric test_accuracy

reproduce-he: install
	INITLAB_DATA_DIR=$(DATA) $(BIN)/initlab sweep configs/he2015.yaml --out $(REPRO)
	$(BIN)/initlab report $(REPRO)/latest
	INITLAB_DATA_DIR=$(DATA) $(BIN)/initlab sweep configs/he2015_sgd.yaml --out $(REPRO)
	$(BIN)/initlab report $(REPRO)/latest

reproduce-selu: install
	INITLAB_DATA_DIR=$(DATA) $(BIN)/initlab sweep configs/selu.yaml --out $(REPRO)
	$(BIN)/initlab report $(REPRO)/latest

# Glorot & Bengio 2010 Table 1's protocol (not part of `reproduce`): 5×1000, plain SGD on minibatches of 10, the
# learning rate chosen per network on validation (report --tune-axis). As shipped it is 5M updates per trial (§2.3), weeks on
# a CPU (`initlab sweep configs/glorot2010_table1.yaml --dry-run` estimates it); docs/reproductions.md's reduced
# budget: make reproduce-table1 TABLE1_SET="--set training.epochs=3"
TABLE1_SET ?=
reproduce-table1: install
	INITLAB_DATA_DIR=$(DATA) $(BIN)/initlab sweep configs/glorot2010_table1.yaml --out $(REPRO) $(TABLE1_SET)
	$(BIN)/initlab report $(REPRO)/latest --tune-axis learning_rate --metric test_accuracy

# issue 21 (not part of `reproduce`): BatchNorm and a bad init (10×128 MLP, full MNIST, 5 epochs); deep residual MLPs
# without normalization (30 blocks of 2: He, Fixup, SkipInit, then He + BatchNorm; 20,000 examples, 3 epochs)
reproduce-bn: install
	INITLAB_DATA_DIR=$(DATA) $(BIN)/initlab sweep configs/bn_bad_init.yaml --out $(REPRO)
	$(BIN)/initlab report $(REPRO)/latest

reproduce-residual: install
	INITLAB_DATA_DIR=$(DATA) $(BIN)/initlab probe configs/deep_residual.yaml --seeds 3 --jacobian-examples 0
	INITLAB_DATA_DIR=$(DATA) $(BIN)/initlab sweep configs/deep_residual.yaml --out $(REPRO)
	$(BIN)/initlab report $(REPRO)/latest
	INITLAB_DATA_DIR=$(DATA) $(BIN)/initlab sweep configs/deep_residual.yaml --out $(REPRO) --name deep_residual_bn \
		--set model.normalization=batchnorm --set 'grid.initializer=[he_normal]'
	$(BIN)/initlab report $(REPRO)/latest

reproduce-he-cnn: install
	INITLAB_DATA_DIR=$(DATA) $(BIN)/initlab sweep configs/he2015_cnn.yaml --out $(REPRO)
	$(BIN)/initlab report $(REPRO)/latest

reproduce-delta: install
	INITLAB_DATA_DIR=$(DATA) $(BIN)/initlab sweep configs/delta_orthogonal_cnn.yaml --out $(REPRO)
	$(BIN)/initlab report $(REPRO)/latest
	INITLAB_DATA_DIR=$(DATA) $(BIN)/initlab probe configs/delta_orthogonal_cnn.yaml --seeds 3 --jacobian-examples 0

# the trainability phase diagram (Schoenholz et al. 2017, Figs. 5–6): tanh, σ_b² = 0.05, σ_w² × depth on the bundled
# sample (not part of `reproduce`: its figure is RUN/report/phase_diagram.png)
reproduce-phase: install
	$(BIN)/initlab sweep configs/phase_diagram.yaml --out $(REPRO)
	$(BIN)/initlab report $(REPRO)/latest

bench: install
	INITLAB_DATA_DIR=$(DATA) $(BIN)/python benchmarks/bench_sweep.py

clean-runs:
	rm -rf runs/20* runs/latest
