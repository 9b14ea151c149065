"""Config validation: every bad input gets a message naming the field, its line, the allowed values."""

from __future__ import annotations

import pytest

from init_lab.catalog.errors import ConfigError
from init_lab.catalog.registry import Choice
from init_lab.config.loading import apply_overrides, config_from_text, load_config, parse_override

from .helpers import REPO

GOOD = """\
name: t
grid:
  initializer: [he_normal]
  activation: [relu]
"""


def error_of(text: str, overrides=None) -> str:
    with pytest.raises(ConfigError) as info:
        config_from_text(text, "c.yaml", overrides)
    return str(info.value)


def test_minimal_config_gets_defaults():
    cfg = config_from_text(GOOD)
    assert cfg.dataset.name == "mnist_sample"
    assert cfg.training.epochs == 5 and cfg.training.optimizer == "adam"
    assert cfg.grid.seed == [0]
    assert cfg.model.architecture().hidden == (256, 256)


def test_parameterised_entries_resolve_with_defaults():
    cfg = config_from_text(
        "grid:\n  initializer: [{name: random_normal, stddev: 0.01}, orthogonal]\n"
        "  activation: [{name: leaky_relu, alpha: 0.2}, leaky_relu]\n"
    )
    assert cfg.grid.initializer[0] == Choice("random_normal", (("stddev", 0.01),))
    assert cfg.grid.initializer[1] == Choice("orthogonal", (("gain", 1.0),))
    assert [c.kwargs["alpha"] for c in cfg.grid.activation] == [0.2, 0.01]


def test_unknown_initializer_names_line_allowed_values_and_nearest_match():
    msg = error_of("grid:\n  initializer:\n    - he_normal\n    - he_norml\n  activation: [relu]\n")
    assert "c.yaml:4" in msg
    assert "grid.initializer[1]" in msg
    assert "unknown initializer 'he_norml'" in msg
    assert "Did you mean 'he_normal'?" in msg
    assert "glorot_uniform" in msg and "orthogonal" in msg  # the allowed values are listed


def test_unknown_activation_and_dataset_and_model():
    msg = error_of(
        "dataset: {name: mnsit}\nmodel: {kind: mlpp}\ngrid:\n  initializer: [zeros]\n  activation: [rellu]\n"
    )
    assert "c.yaml:1: dataset.name: unknown dataset 'mnsit'. Did you mean 'mnist'?" in msg
    assert "c.yaml:2: model.kind: unknown model 'mlpp'. Did you mean 'mlp'?" in msg
    assert "c.yaml:5: grid.activation[0]: unknown activation 'rellu'. Did you mean 'relu'?" in msg
    assert "mnist_cnn" in msg and "selu" in msg


def test_unknown_key_with_line_and_suggestion():
    msg = error_of(GOOD + "trainig:\n  epochs: 3\n")
    assert "c.yaml:5: unknown field 'trainig'. Did you mean 'training'?" in msg
    assert "Allowed here: name, dataset, model, grid, training, device" in msg
    msg = error_of(GOOD + "training:\n  epochs: 3\n  learnig_rate: 0.1\n")
    assert "c.yaml:7: unknown field 'training.learnig_rate'. Did you mean 'learning_rate'?" in msg


def test_unknown_parameter_of_an_initializer():
    msg = error_of("grid:\n  initializer: [{name: random_normal, stdev: 0.1}]\n  activation: [relu]\n")
    assert "initializer 'random_normal' has no parameter 'stdev'. Did you mean 'stddev'?" in msg


def test_wrong_types_and_ranges():
    msg = error_of(GOOD + "training:\n  epochs: ten\n  batch_size: 0\n  learning_rate: -1\n")
    assert "c.yaml:6: training.epochs: Input should be a valid integer, got 'ten'" in msg
    assert "c.yaml:7: training.batch_size: Input should be greater than 0" in msg
    assert "c.yaml:8: training.learning_rate: Input should be greater than 0" in msg
    msg = error_of(GOOD + "dataset: {validation_split: 1.5}\n")
    assert "dataset.validation_split: Input should be less than 1" in msg
    msg = error_of(GOOD + "training: {epochs: 2.5}\n")
    assert "training.epochs" in msg and "integer" in msg
    msg = error_of(GOOD + "training: {deterministic: 3}\n")
    assert "training.deterministic" in msg and "boolean" in msg


def test_scientific_notation_learning_rate_is_accepted():
    # YAML 1.1 reads 1e-3 (no dot) as a string: it is still the number everyone means
    assert config_from_text(GOOD + "training: {learning_rate: 1e-3}\n").training.learning_rate == 0.001


def test_empty_and_duplicate_axes():
    msg = error_of("grid:\n  initializer: []\n  activation: [relu, tanh, relu]\n")
    assert "grid.initializer: must list at least one value" in msg
    assert "duplicated grid value" in msg and "relu" in msg


def test_duplicate_keys_are_rejected():
    msg = error_of(GOOD + "name: again\n")
    assert "duplicate key 'name'" in msg and "line 1" in msg


def test_missing_grid():
    assert "missing required field 'grid'" in error_of("name: x\n")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "is empty"),
        ("# only a comment\n", "is empty"),
        ("- a\n- b\n", "not a list"),
        ("just text", "not a str"),
        ("grid: [\n", "not valid YAML"),
        ("a: b: c\n", "c.yaml:1"),
        ("!!python/object:os.system {}\n", "not valid YAML"),
    ],
)
def test_not_a_config(text, expected):
    assert expected in error_of(text)


def test_model_shape_rules():
    assert "fixed shape" in error_of(GOOD + "model: {kind: mnist_cnn, depth: 3}\n")
    assert "either 'hidden" in error_of(GOOD + "model: {kind: mlp, hidden: [3], depth: 2}\n")
    assert "depth ≥ 20" in error_of(GOOD + "model: {kind: deep_mlp, depth: 5}\n")
    msg = error_of("model: {kind: mnist_cnn}\ngrid: {initializer: [zeros], activation: [relu], depth: [2, 3]}\n")
    assert "depth/width need model kind 'mlp' or 'deep_mlp'" in msg


def test_set_overrides():
    cfg = config_from_text(GOOD, overrides=["training.epochs=1", "grid.seed=[0, 1]", "dataset.name=synthetic"])
    assert cfg.training.epochs == 1 and cfg.grid.seed == [0, 1] and cfg.dataset.name == "synthetic"


def test_set_errors_name_the_override():
    msg = error_of(GOOD, ["training.epochs=zero"])
    assert "--set training.epochs: training.epochs: Input should be a valid integer, got 'zero'" in msg
    msg = error_of(GOOD, ["trainig.epochs=1"])
    assert "--set trainig.epochs: unknown field 'trainig'. Did you mean 'training'?" in msg
    with pytest.raises(ConfigError, match="expects key=value"):
        parse_override("training.epochs")
    with pytest.raises(ConfigError, match="dotted path"):
        parse_override("training..epochs=1")
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"name": "x"}, ["name.first=1"])
    assert parse_override("grid.activation=[relu, tanh]") == (("grid", "activation"), ["relu", "tanh"])


def test_missing_file():
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("/nonexistent/sweep.yaml")


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO / "configs").glob("*.yaml")))
def test_shipped_configs_are_valid(name):
    """Every shipped config, the reproductions' included, validates and expands."""
    from init_lab.config.grid import expand

    cfg = load_config(REPO / "configs" / f"{name}.yaml")
    assert cfg.name and expand(cfg)


def test_resolved_config_round_trips():
    from init_lab.config.loading import config_to_yaml

    cfg = config_from_text(GOOD + "training: {epochs: 2}\n", overrides=["grid.activation=[relu, {name: elu, alpha: 0.5}]"])
    again = config_from_text(config_to_yaml(cfg))
    assert again.resolved() == cfg.resolved()
