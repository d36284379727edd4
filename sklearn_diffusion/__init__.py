"""Score-based diffusion models with a scikit-learn interface."""

from .bootstrapped import BootstrappedScoreEstimator
from .imputer import DiffusionImputer
from .localized import LocalizedDiffusionEstimator
from .outlier import DiffusionOutlierDetector

__all__ = [
    "BootstrappedScoreEstimator", "LocalizedDiffusionEstimator", "DiffusionOutlierDetector",
    "DiffusionImputer",
]
__version__ = "0.1.0.dev0"
