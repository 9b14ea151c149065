"""Where XLA keeps compiled programs between processes: TensorFlow's persistent compilation cache, set up
before TensorFlow is imported (``configure``, called by ``backend``).

A program found there is loaded instead of compiled: the same compiled code, so the same numbers. The folder is
per TensorFlow version and per CPU (its model and instruction-set flags), so a home directory shared by machines
of different CPUs never hands one machine code built for another. Pruned, oldest files first, when it grows past
``defaults.XLA_CACHE_BYTES``.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

from init_lab.catalog import caches, defaults

FLAG = "--tf_xla_persistent_cache_directory"


def configure(environ: os._Environ | dict[str, str] = os.environ) -> Path | None:
    """Point TF_XLA_FLAGS at the cache folder (unless the user's own flags name one, or the cache is off);
    the folder in use, or None."""
    flags = environ.get("TF_XLA_FLAGS", "")
    choice = environ.get(defaults.XLA_CACHE_ENV, "")
    if FLAG in flags or choice.lower() == "off":
        return None
    folder = Path(choice) if choice else caches.root(environ) / "xla" / _machine_key()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        caches.prune(folder, defaults.XLA_CACHE_BYTES)
    except OSError as exc:  # a read-only home: compile every time, as without the cache
        if choice:  # a folder the user named: say why it is not used
            sys.stderr.write(f"initlab: {defaults.XLA_CACHE_ENV}={choice} cannot be used ({exc.strerror or exc}); "
                             "compiling without the XLA cache\n")
        return None
    environ["TF_XLA_FLAGS"] = f"{flags} {FLAG}={folder}".strip()
    return folder


def _machine_key() -> str:
    """TensorFlow's version and a digest of this CPU's model and flags."""
    version = "unknown"
    for dist in ("tensorflow", "tensorflow-cpu", "tf-nightly"):
        try:
            version = metadata.version(dist)
            break
        except metadata.PackageNotFoundError:
            continue
    cpu = platform.machine() + platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            cpu += "".join(sorted({line for line in f if line.startswith(("model name", "flags"))}))
    except OSError:
        pass
    return f"tf{version}-{hashlib.sha256(cpu.encode()).hexdigest()[:12]}"
