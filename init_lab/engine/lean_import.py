"""What importing Keras pulls in that an initlab process never uses, and how the console script skips it.

Keras 3 imports scikit-learn for its estimator wrappers, matplotlib for its image-gallery plots and IPython for its
notebook detection, and TensorFlow's legacy Keras imports scipy.sparse, whenever they are installed (each behind
``try: import … except ImportError``): 0.66, 0.35, 0.02 and 0.14 s of a 14 s sweep on the developers' machine, in
any environment that has them. ``initlab``'s own process uses none of them
through Keras, so the CLI asks (:func:`skip_unused`) for them to be hidden while Keras is imported; Keras then
sees them as absent, and they import normally afterwards for initlab's own uses (the 'digits' dataset, plots,
SciPy's statistics).
A library caller's process (the notebook API) is left as it is: its Keras keeps every integration.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

UNUSED = ("sklearn", "matplotlib", "matplotlib.pyplot", "IPython", "scipy.sparse")
_skip = False


def skip_unused() -> None:
    """Hide :data:`UNUSED` from the Keras import of this process (called by the console script)."""
    global _skip
    _skip = True


@contextlib.contextmanager
def importing_keras() -> Iterator[None]:
    """While Keras is imported: the modules of :data:`UNUSED` not imported yet look absent, if asked for."""
    hidden = [name for name in UNUSED if _skip and name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # the import system's "not installed"
    try:
        yield
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
