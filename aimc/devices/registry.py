"""Small registries so that configs and experiment files name a device by string.

One pair of helpers (:func:`registrar`, :func:`build`) serves every registry: the
inference devices here (:data:`DEVICES`) and the pulsed training devices of
:mod:`aimc.devices.pulsed`, which are kept apart because they are not inference devices.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

DEVICES: dict[str, type] = {}


def registrar(registry: dict[str, type], kind: str) -> Callable[[str], Callable[[type], type]]:
    """A class decorator factory adding classes to ``registry`` by name (``kind`` names
    the registry in errors); the class gets a ``name`` attribute."""

    def register(name: str) -> Callable[[type], type]:
        def wrap(cls: type) -> type:
            if name in registry:
                raise ValueError(f"{kind} name {name!r} is already registered")
            registry[name] = cls
            cls.name = name
            return cls

        return wrap

    return register


def build(registry: dict[str, type], name: str, error_prefix: str, **params: Any):
    """Instantiate ``registry[name](**params)``; an unknown name raises a ValueError that
    starts with ``error_prefix`` and lists the registered names."""
    try:
        cls = registry[name]
    except KeyError:
        raise ValueError(f"{error_prefix} {name!r}; registered: {sorted(registry)}") from None
    return cls(**params)


register_device = registrar(DEVICES, "device")
"""Class decorator: make a device dataclass available under ``name``."""


def make_device(name: str, **params: Any):
    """Build the device registered as ``name`` with the given parameters."""
    return build(DEVICES, name, "device.name: unknown device", **params)
