"""Config errors as initlab's messages: a pydantic error → one line naming where, the field, what is wrong.

Where is the ``--set`` override that gave the value, else the file and line (from the YAML line map), else
the source alone (Python data has no lines). An unknown field gets the nearest allowed name
(``catalog.errors.did_you_mean``) and the list of fields allowed in its section. This module knows no
config model: the caller passes the sections, so the models' validators can use it too (``_show``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from init_lab.catalog.errors import did_you_mean
from init_lab.catalog.registry import Choice


def _show(value: Any) -> str:
    """A config value as a message quotes it: a registry choice by name and parameters, anything else as repr."""
    if isinstance(value, Choice):
        return value.name + (f" {dict(value.params)}" if value.params else "")
    return repr(value)


def format_error(err: dict[str, Any], source: str, lines: dict[tuple, int], touched: set[tuple],
                 sections: Mapping[str, type[BaseModel]]) -> str:
    """One pydantic error (``ValidationError.errors()`` item) as a line: origin, field, message.

    ``lines`` maps field paths to YAML lines, ``touched`` holds the paths given by --set, and ``sections``
    maps each section's dotted path ("" for the top level) to its model, whose fields an unknown one lists."""
    loc = tuple(err["loc"])
    # pydantic appends validator/type names to loc in unions and Annotated types; keep real path parts
    loc = tuple(p for p in loc if isinstance(p, int) or not str(p).startswith(("function-", "constrained-")))
    field = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[") or "(top level)"
    origin = next((f"--set {'.'.join(t)}" for t in touched if loc and (loc[: len(t)] == t or t[: len(loc)] == loc)), None)
    if origin is None:
        probe = loc
        while probe not in lines and probe:
            probe = probe[:-1]
        origin = f"{source}:{lines.get(probe, 1)}" if lines else source  # Python data has no lines
    kind = err["type"]
    if kind == "extra_forbidden":
        section = sections.get(".".join(str(p) for p in loc[:-1]))
        allowed = list(section.model_fields) if section else []
        hint = did_you_mean(str(loc[-1]), allowed)
        return f"{origin}: unknown field '{field}'.{hint} Allowed here: {', '.join(allowed)}."
    if kind == "missing":
        return f"{origin}: missing required field '{field}'."
    msg = err["msg"]
    if kind == "value_error":
        msg = str(err.get("ctx", {}).get("error", msg))
    elif "input" in err and kind not in ("too_short",):
        msg = f"{msg}, got {err['input']!r}"
    if kind == "too_short":
        msg = "must list at least one value"
    return f"{origin}: {field}: {msg}"
