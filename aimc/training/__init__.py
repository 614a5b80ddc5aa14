"""Training on analog hardware: in-situ training on pulsed devices (:mod:`.insitu`)."""

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

__all__ = ["ALGORITHMS", "AnalogSGD", "InSituConfig", "InSituLinear", "InSituOptimizer",
           "MixedPrecision", "MultiConductance", "TikiTaka", "insitu_layers", "insitu_mlp",
           "make_optimizer"]
