"""Configuration: flat dataclasses with a docstring under every field.

``AnalogConfig`` gathers three flat parts: the device (a registered device dataclass,
e.g. :class:`aimc.devices.PCM`), the tile periphery (:class:`TileConfig`) and the
weight mapping (:class:`MappingConfig`). Every field is validated in ``__post_init__``
with a message that names it; configs round-trip through dicts and TOML.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .devices import DEVICES, PCM, make_device

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

INPUT_RANGES = ("static", "dynamic")
WEIGHT_SCALINGS = ("tile", "column")
PAIR_PROGRAMMING = ("open", "closed")


def _int_in(owner: str, name: str, value: Any, lo: int, hi: int, zero_ok: bool = False):
    ok = isinstance(value, int) and not isinstance(value, bool)
    ok = ok and ((zero_ok and value == 0) or lo <= value <= hi)
    if not ok:
        extra = "0 (off) or " if zero_ok else ""
        raise ValueError(f"{owner}.{name} must be {extra}an integer in [{lo}, {hi}], "
                         f"got {value!r}")


def _float_in(owner: str, name: str, value: Any, lo: float, hi: float) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and lo <= value <= hi):
        raise ValueError(f"{owner}.{name} must be a number in [{lo}, {hi}], got {value!r}")


def check_bool(owner: str, name: str, value: Any) -> None:
    """A config flag: ``True`` or ``False`` only (not 0/1 or "yes"), else an error naming it."""
    if not isinstance(value, bool):
        raise ValueError(f"{owner}.{name} must be true or false, got {value!r}")


def _choice(owner: str, name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{owner}.{name} must be one of {list(choices)}, got {value!r}")


@dataclass
class TileConfig:
    """The periphery of one crossbar tile: size, DAC, ADC and output noise.

    Signals inside a tile are normalised: inputs to [-1, 1] (DAC full scale) and
    weights to [-1, 1] (g_max of the mapping), so one full-scale weight times one
    full-scale input gives 1. ``out_noise`` and ``out_bound`` are in those units
    (the convention of aihwkit's ``IOParameters``, so values carry over).
    """

    rows: int = 512
    """Crossbar rows (inputs) per tile; larger layers are split over several tiles."""
    cols: int = 512
    """Crossbar columns (outputs) per tile."""
    dac_bits: int = 8
    """DAC resolution in bits over [-1, 1] (2^bits - 1 symmetric levels); 0 = exact."""
    input_range: str = "static"
    """How inputs are normalised before the DAC: "static" (one range per layer,
    calibrated from data with ``aimc.calibrate_inputs``, as on real chips) or
    "dynamic" (each input vector divided by its own max |x|, per tile)."""
    adc_bits: int = 8
    """ADC resolution in bits over [-out_bound, out_bound]; 0 = exact."""
    out_bound: float = 10.0
    """Output clipping bound (normalised units); 0 = unbounded (then adc_bits must be 0).
    ``aimc.calibrate_outputs`` replaces it, per layer, by a range measured on the chip."""
    out_noise: float = 0.04
    """Std of additive Gaussian noise on every tile output (normalised units); 0 = none."""
    exact_noise: bool = False
    """Simulation setting: draw every output-noise sample fresh (about 20x slower) instead
    of the fast two-table method of :mod:`aimc.functional.noise` (i.i.d. within a call)."""

    def __post_init__(self) -> None:
        _int_in("TileConfig", "rows", self.rows, 1, 1 << 20)
        _int_in("TileConfig", "cols", self.cols, 1, 1 << 20)
        _int_in("TileConfig", "dac_bits", self.dac_bits, 2, 24, zero_ok=True)
        _int_in("TileConfig", "adc_bits", self.adc_bits, 2, 24, zero_ok=True)
        _choice("TileConfig", "input_range", self.input_range, INPUT_RANGES)
        _float_in("TileConfig", "out_bound", self.out_bound, 0.0, 1e9)
        _float_in("TileConfig", "out_noise", self.out_noise, 0.0, 1e3)
        check_bool("TileConfig", "exact_noise", self.exact_noise)
        if self.adc_bits and not self.out_bound:
            raise ValueError("TileConfig.adc_bits needs TileConfig.out_bound > 0 "
                             "(the ADC quantises [-out_bound, out_bound])")


@dataclass
class MappingConfig:
    """How weights are mapped onto differential pairs of devices: W = (G+ - G-) / s."""

    weight_scaling: str = "tile"
    """Where s = g_max / max|W| is taken: "tile" (one per tile) or "column" (one per
    tile column, i.e. per output within a tile)."""
    digital_bias: bool = True
    """Add the bias in digital after the ADC (True) or store it on one more crossbar
    row driven at full-scale input (False)."""
    g_min: float = 0.0
    """Conductance in uS of a device that holds zero (e.g. a RESET floor): a weight w maps
    to G+ = g_min + w (g_max - g_min), G- = g_min (pcm-model.md sec. 1 variant). Both
    devices are programmed, drift and are read; the difference cancels g_min only on
    average."""
    pairs: int = 1
    """Differential pairs per weight (2 devices each): W = sum_k F^(P-1-k) (G_k+ - G_k-),
    normalised by sum_k F^(P-1-k) so the full scale stays g_max (pcm-model.md sec. 1;
    Mackin et al. 2019 use 2 pairs, i.e. 4 PCM devices per weight)."""
    pair_gain: float = 1.0
    """F, the significance of a pair over the next one (1: all pairs equal, their errors
    average; Ambrogio 2018 uses 3)."""
    pair_programming: str = "open"
    """"open": every pair is programmed to the weight on its own; "closed": each pair after
    the first is programmed to what the pairs before it missed, as read right after they
    were programmed (program-and-verify across devices, Mackin 2019). Same as "open" for
    one pair."""

    def __post_init__(self) -> None:
        _choice("MappingConfig", "weight_scaling", self.weight_scaling, WEIGHT_SCALINGS)
        _float_in("MappingConfig", "g_min", self.g_min, 0.0, 1e6)
        _int_in("MappingConfig", "pairs", self.pairs, 1, 8)
        _float_in("MappingConfig", "pair_gain", self.pair_gain, 1.0, 1000.0)
        _choice("MappingConfig", "pair_programming", self.pair_programming, PAIR_PROGRAMMING)
        check_bool("MappingConfig", "digital_bias", self.digital_bias)


@dataclass
class AnalogConfig:
    """Everything that defines the simulated analog hardware of a converted model."""

    device: Any = field(default_factory=PCM)
    """A registered device dataclass (``aimc.devices.DEVICES``), e.g. ``PCM()``."""
    tile: TileConfig = field(default_factory=TileConfig)
    """Tile size and periphery (DAC, ADC, output noise)."""
    mapping: MappingConfig = field(default_factory=MappingConfig)
    """Weight-to-conductance mapping."""

    def __post_init__(self) -> None:
        if type(self.device) not in DEVICES.values():
            raise ValueError(f"AnalogConfig.device must be one of the registered devices "
                             f"{sorted(DEVICES)}, got {type(self.device).__name__}")
        if not isinstance(self.tile, TileConfig):
            raise ValueError("AnalogConfig.tile must be a TileConfig")
        if not isinstance(self.mapping, MappingConfig):
            raise ValueError("AnalogConfig.mapping must be a MappingConfig")
        if self.mapping.g_min >= self.device.g_max:
            raise ValueError(f"AnalogConfig.mapping.g_min must be below device.g_max "
                             f"({self.device.g_max} uS), got {self.mapping.g_min}")

    # -- dict / TOML round trip --------------------------------------------------------------
    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain nested dict: {"device": {"name": ..., fields}, "tile": {...}, "mapping": {...}}."""
        return {
            "device": {"name": self.device.name, **dataclasses.asdict(self.device)},
            "tile": dataclasses.asdict(self.tile),
            "mapping": dataclasses.asdict(self.mapping),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnalogConfig:
        """Inverse of :meth:`to_dict`; unknown sections or fields are errors naming them."""
        unknown = set(data) - {"device", "tile", "mapping"}
        if unknown:
            raise ValueError(f"AnalogConfig: unknown section(s) {sorted(unknown)}")
        dev = dict(data.get("device", {"name": "pcm"}))
        name = dev.pop("name", "pcm")
        dev_cls = DEVICES.get(name)
        if dev_cls is None:
            raise ValueError(f"device.name: unknown device {name!r}; "
                             f"registered: {sorted(DEVICES)}")
        _check_fields(f"device ({name})", dev_cls, dev)
        _check_fields("tile", TileConfig, data.get("tile", {}))
        _check_fields("mapping", MappingConfig, data.get("mapping", {}))
        return cls(device=make_device(name, **dev), tile=TileConfig(**data.get("tile", {})),
                   mapping=MappingConfig(**data.get("mapping", {})))

    def to_toml(self) -> str:
        """TOML text with one table per part."""
        return dumps_toml(self.to_dict())

    @classmethod
    def from_toml(cls, text: str) -> AnalogConfig:
        """Parse TOML text written by :meth:`to_toml` (or by hand)."""
        return cls.from_dict(tomllib.loads(text))

    def save(self, path: str | os.PathLike) -> None:
        """Write the TOML atomically (temp file + rename)."""
        write_text_atomic(Path(path), self.to_toml())

    @classmethod
    def load(cls, path: str | os.PathLike) -> AnalogConfig:
        """Read a TOML file."""
        return cls.from_toml(Path(path).read_text())


def _check_fields(section: str, dc: type, values: dict[str, Any]) -> None:
    names = {f.name for f in dataclasses.fields(dc)}
    bad = set(values) - names
    if bad:
        raise ValueError(f"{section}: unknown field(s) {sorted(bad)}; allowed: {sorted(names)}")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"TOML cannot hold {value!r}")
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def dumps_toml(data: dict[str, Any]) -> str:
    """A tiny TOML writer for scalars, lists and one level of tables (all configs need)."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for key, table in data.items():
        if isinstance(table, dict):
            lines += ["", f"[{key}]"]
            lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines).lstrip("\n") + "\n"


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results and configs are for sharing
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
