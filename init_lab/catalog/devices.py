"""Device kinds: what a trial computes on, derived once from the device a sweep set up.

CPU and GPU round differently, so the kind is part of a trial's checkpoint fingerprint (a saved state
never moves between them); it also chooses the memory the budget is a share of, and the speed the
duration estimate assumes.
"""

from __future__ import annotations

from enum import Enum


class DeviceKind(str, Enum):
    """The kind of device trials compute on; its value is also a ``--device`` request ("cpu", "gpu")."""

    CPU = "cpu"
    GPU = "gpu"

    @classmethod
    def of(cls, device: str) -> DeviceKind:
        """The kind of a device as ``backend.setup_device`` describes it ("gpu (NVIDIA …; 1 visible)",
        "cpu (16 cores)") or as named ("cpu", "gpu"); "auto" (nothing set up yet) counts as the CPU."""
        return cls.GPU if device.startswith(cls.GPU.value) else cls.CPU

    @classmethod
    def for_share(cls, gpus: float) -> DeviceKind:
        """The kind a Ray task sets up: a GPU where its ``resources.gpus`` share is above 0."""
        return cls.GPU if gpus > 0 else cls.CPU
