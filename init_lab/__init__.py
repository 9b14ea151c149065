"""initlab: a command-line laboratory for weight-initialization × activation-function experiments.

The Python API (``init_lab.api``): ``sweep``, ``resume``, ``load_run``, ``probe``, ``compare``, ``compare_paired``
and ``Run``. They are imported on first use, so ``import init_lab`` stays instant and imports neither TensorFlow
nor pandas.
"""

from __future__ import annotations

from typing import Any

from init_lab._version import __version__

__all__ = ["Run", "__version__", "compare", "compare_paired", "load_run", "probe", "resume", "sweep"]


def __getattr__(name: str) -> Any:
    if name in __all__:  # the API, on first use
        from init_lab import api

        return getattr(api, name)
    raise AttributeError(f"module 'init_lab' has no attribute {name!r}")
