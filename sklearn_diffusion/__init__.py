"""Score-based diffusion models with a scikit-learn interface."""

from .bootstrapped import BootstrappedScoreEstimator
from .outlier import DiffusionOutlierDetector

__all__ = ["BootstrappedScoreEstimator", "DiffusionOutlierDetector"]
__version__ = "0.1.0.dev0"
