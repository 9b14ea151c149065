"""What this machine has for a sweep, and the memory budget drawn from it.

Probing only, and no TensorFlow (``--dry-run`` uses all of it, and starts no TensorFlow): host RAM from
``/proc/meminfo`` within a container's cgroup limit, a GPU's free memory from ``nvidia-smi``. The budget
is ``resources.memory`` where the config sets one, else ``MEMORY_FRACTION`` of what is free; what one
group may use of it is the estimate's business (``memory.MemoryPlan``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Any

from init_lab.catalog import defaults
from init_lab.catalog.devices import DeviceKind
from init_lab.catalog.errors import ConfigError
from init_lab.config.schema import parse_memory


def _meminfo(field: str) -> int | None:
    """A field of /proc/meminfo in bytes; None off Linux or if unreadable."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_headroom() -> int | None:
    """What the container's memory limit leaves (cgroup v2), where there is one."""
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read().strip())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else max(0, int(limit) - used)


def host_available_bytes() -> int:
    """Host RAM this process can still use: MemAvailable (Linux), else the physical total; within a
    container's limit."""
    available = _meminfo("MemAvailable")
    if available is None:
        try:
            available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            available = defaults.GPU_MEMORY_FALLBACK  # no way to tell: as modest as the GPU's fallback
    headroom = _cgroup_headroom()
    return min(available, headroom) if headroom is not None else available


def _tensorflow_gpu_bytes_in_use() -> int:
    """What this process's TensorFlow already holds on its first GPU (nvidia-smi counts it as used).
    Only where TensorFlow is imported already: asking would otherwise import and initialise it."""
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return 0
    try:
        return int(tf.config.experimental.get_memory_info("GPU:0")["current"])
    except Exception:  # noqa: BLE001 - no GPU, or a TensorFlow without the call: nothing held
        return 0


def gpu_free_bytes() -> int | None:
    """Free memory of the first visible GPU per nvidia-smi, plus what this process holds there; None if
    nvidia-smi is missing or cannot tell (TensorFlow's public API reports usage, not capacity)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    select = ["-i", visible] if visible and not visible.startswith("MIG") else []
    try:
        text = subprocess.run([smi, *select, "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=10, check=True).stdout
        free_mib = int(text.split()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None
    return free_mib * 2**20 + _tensorflow_gpu_bytes_in_use()


def budget_and_source(device: str, setting: Any) -> tuple[int, str]:
    """The budget in bytes and how it was chosen (for --dry-run and the manifest). ``device``: "cpu", "gpu",
    "auto" (a dry run: a GPU if nvidia-smi sees one), or what ``backend.setup_device`` returned;
    ``setting``: ``resources.memory``."""
    try:
        explicit = parse_memory(setting)
    except ValueError as exc:
        raise ConfigError(f"resources.memory: {exc}") from None
    if explicit is not None:
        return explicit, "resources.memory"
    share, fraction = f"{defaults.MEMORY_FRACTION:.0%}", defaults.MEMORY_FRACTION
    gpu = DeviceKind.of(device) is DeviceKind.GPU
    free = gpu_free_bytes() if gpu or device == "auto" else None
    if free is not None:
        return int(free * fraction), f"auto: {share} of free GPU memory"
    if gpu:
        fallback = defaults.GPU_MEMORY_FALLBACK
        return int(fallback * fraction), f"auto: {share} of {format_bytes(fallback)} (nvidia-smi cannot tell the GPU's)"
    return int(host_available_bytes() * fraction), f"auto: {share} of available host RAM"


def capacity_bytes(device: str) -> tuple[int, str] | None:
    """All the memory this machine has for the sweep — not the budget, a share of it — and what it is; None
    where it cannot tell (a GPU nvidia-smi does not report). A trial estimated above it cannot fit."""
    if DeviceKind.of(device) is DeviceKind.GPU:
        free = gpu_free_bytes()
        return (free, "free GPU memory") if free is not None else None
    return host_available_bytes(), "available host RAM"


def format_bytes(n: float) -> str:
    """1234567 → '1.2 MB' (powers of 1000, as the budget's 'GB'): budgets, capacities and estimates alike."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} TB"
