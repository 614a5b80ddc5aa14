"""In-memory computing beyond DNNs: computations done by the device physics itself."""

from .correlation import (
    CorrelationConfig,
    CorrelationResult,
    detect_correlations,
    intermeans_threshold,
    precision_recall,
    sample_processes,
    valley_threshold,
)

__all__ = [
    "CorrelationConfig",
    "CorrelationResult",
    "detect_correlations",
    "intermeans_threshold",
    "precision_recall",
    "sample_processes",
    "valley_threshold",
]
