"""Training for analog hardware: hardware-aware noise-injection training (:mod:`.hwa`) and
in-situ training on pulsed devices (:mod:`.insitu`)."""

from .hwa import HWAConfig, clip_weights, prepare_hwa, remove_hwa, train_hwa
from .insitu import (
    ALGORITHMS,
    AnalogSGD,
    InSituConfig,
    InSituLinear,
    InSituOptimizer,
    MixedPrecision,
    MultiConductance,
    TikiTaka,
    insitu_layers,
    insitu_mlp,
    make_optimizer,
)

__all__ = [
    "ALGORITHMS",
    "AnalogSGD",
    "HWAConfig",
    "InSituConfig",
    "InSituLinear",
    "InSituOptimizer",
    "MixedPrecision",
    "MultiConductance",
    "TikiTaka",
    "clip_weights",
    "insitu_layers",
    "insitu_mlp",
    "make_optimizer",
    "prepare_hwa",
    "remove_hwa",
    "train_hwa",
]
