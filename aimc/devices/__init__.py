"""Device physics only (no nn.Module): conductances in uS, times in s.

>>> dev = PCM()
>>> g_prog, nu = dev.program(g_target, generator=g)
>>> g_t = dev.read(g_prog, nu, t_seconds, generator=g)
"""

from .pcm import PCM, IdealDevice
from .registry import DEVICES, make_device, register_device

__all__ = ["DEVICES", "PCM", "IdealDevice", "make_device", "register_device"]
