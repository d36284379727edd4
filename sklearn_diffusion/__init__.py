"""Score-based diffusion models with a scikit-learn interface."""

from ._threads import config_context, get_config, set_config
from .bootstrapped import BootstrappedScoreEstimator
from .imputer import DiffusionImputer
from .localized import LocalizedDiffusionEstimator
from .monitoring import DriftMonitor
from .outlier import DiffusionOutlierDetector

__all__ = [
    "BootstrappedScoreEstimator", "LocalizedDiffusionEstimator", "DiffusionOutlierDetector",
    "DiffusionImputer", "DriftMonitor", "set_config", "get_config", "config_context",
]
__version__ = "0.1.0.dev0"
