"""Score-based diffusion models with a scikit-learn interface."""

from .bootstrapped import BootstrappedScoreEstimator
from .localized import LocalizedDiffusionEstimator

__all__ = ["BootstrappedScoreEstimator", "LocalizedDiffusionEstimator"]
__version__ = "0.1.0.dev0"
