"""Property-based: whatever text or structure reaches the config loader or --set, the only
exception that comes out is ConfigError (never a traceback-worthy one)."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from init_lab.catalog.errors import ConfigError
from init_lab.config.loading import apply_overrides, config_from_text, parse_override
from init_lab.config.schema import SweepConfig

FIELDS = ["name", "dataset", "model", "grid", "training", "device", "initializer", "activation", "seed", "epochs",
          "kind", "hidden", "depth", "width", "learning_rate", "stddev", "alpha", "gain", "validation_split", "path"]
NAMES = ["he_normal", "relu", "zeros", "mnist", "mlp", "mnist_cnn", "leaky_relu", "random_normal", "gpu", "adam"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), st.sampled_from(NAMES),
)
keys = st.one_of(st.sampled_from(FIELDS), st.text(max_size=10), st.integers(-3, 3))
structures = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=5)),
    max_leaves=25,
)


def only_config_errors(text: str, overrides=None) -> None:
    try:
        result = config_from_text(text, "fuzz.yaml", overrides)
    except ConfigError as exc:
        assert str(exc)
    else:
        assert isinstance(result, SweepConfig)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_arbitrary_text(text):
    only_config_errors(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(structures)
def test_arbitrary_structures(data):
    only_config_errors(yaml.safe_dump(data))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["dataset", "model", "grid", "training"]),
                       st.dictionaries(st.sampled_from(FIELDS), structures, max_size=4), max_size=4))
def test_structures_shaped_like_configs(data):
    data.setdefault("grid", {"initializer": ["he_normal"], "activation": ["relu"]})
    only_config_errors(yaml.safe_dump(data))


GOOD = "grid: {initializer: [he_normal], activation: [relu]}\n"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=40), max_size=3))
def test_arbitrary_set_overrides(overrides):
    only_config_errors(GOOD, overrides)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60), structures)
def test_override_parser_and_application(text, base):
    """Whatever parses as key=value either lands at its dotted path, or is refused naming the --set and the
    part of the path that is not a section."""
    try:
        path, value = parse_override(text)
    except ConfigError as exc:
        assert str(exc).startswith("--set")
        return
    assert path and all(path)
    data = base if isinstance(base, dict) else {}
    try:
        touched = apply_overrides(data, [text])
    except ConfigError as exc:
        assert str(exc).startswith(f"--set {'.'.join(path)}: ") and "is not a section" in str(exc)
        return
    assert touched == {path}
    node = data
    for part in path[:-1]:
        node = node[part]
    assert node[path[-1]] == value or value != value  # NaN is not equal to itself


def test_yaml_alias_bomb_is_handled_quickly():
    """A billion-laughs document (9·4⁸ ≈ 590,000 references) is answered, not expanded forever: a hang guard
    (not a timing test) fails the test instead of hanging CI if that ever changes."""
    import signal

    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8)
    )

    def hung(signum, frame):
        raise TimeoutError("the config loader is still expanding the alias bomb after 60 s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        with pytest.raises(ConfigError):
            config_from_text(bomb, "bomb.yaml")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
