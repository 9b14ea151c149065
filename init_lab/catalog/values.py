"""Value types shared by the config's fields and the grid's axes (pydantic annotations).

A grid axis validates its values exactly as the config field it sweeps does, so both take their type
from here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from init_lab.catalog.errors import unknown_name_message
from init_lab.catalog.models import NORMALIZATIONS
from init_lab.catalog.optimizers import OPTIMIZERS

_FLOAT_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def number(value: Any) -> Any:
    # YAML 1.1 reads "1e-3" (no dot) as a string; accept it as the number everyone means.
    if isinstance(value, str) and _FLOAT_RE.match(value.strip()):
        return float(value)
    return value


def name_in(kind: str, allowed: Mapping[str, Any] | tuple[str, ...]):
    """A validator accepting only the names in ``allowed``, with a "did you mean" for the others."""
    def check(value: Any) -> Any:
        if not isinstance(value, str) or value not in allowed:
            raise ValueError(unknown_name_message(kind, value, allowed))
        return value

    return check


PosFloat = Annotated[float, BeforeValidator(number), Field(gt=0, allow_inf_nan=False)]
PosInt = Annotated[int, Field(gt=0)]
NonNegFloat = Annotated[float, BeforeValidator(number), Field(ge=0, allow_inf_nan=False)]
OptimizerName = Annotated[str, BeforeValidator(name_in("optimizer", OPTIMIZERS.entries))]
NormalizationName = Annotated[str, BeforeValidator(name_in("normalization", NORMALIZATIONS))]
