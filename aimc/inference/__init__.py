"""Programming, drift, drift compensation and accuracy over time."""

from .chip import (
    COMPENSATIONS,
    adc_saturation,
    calibrate_inputs,
    calibrate_outputs,
    compensate,
    drift,
    program,
    restore_bn_stats,
)
from .evaluate import accuracy, evaluate_over_time, method_name

__all__ = ["COMPENSATIONS", "accuracy", "adc_saturation", "calibrate_inputs",
           "calibrate_outputs", "compensate", "drift", "evaluate_over_time", "method_name",
           "program", "restore_bn_stats"]
