"""A small registry so that configs and experiment files name a device by string."""

from __future__ import annotations

from typing import Any

DEVICES: dict[str, type] = {}


def register_device(name: str):
    """Class decorator: make a device dataclass available under ``name``."""

    def wrap(cls: type) -> type:
        if name in DEVICES:
            raise ValueError(f"device name {name!r} is already registered")
        DEVICES[name] = cls
        cls.name = name
        return cls

    return wrap


def make_device(name: str, **params: Any):
    """Build the device registered as ``name`` with the given parameters."""
    try:
        cls = DEVICES[name]
    except KeyError:
        raise ValueError(
            f"device.name: unknown device {name!r}; registered: {sorted(DEVICES)}"
        ) from None
    return cls(**params)
