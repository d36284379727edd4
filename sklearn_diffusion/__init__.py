"""Score-based diffusion models with a scikit-learn interface."""

from .bootstrapped import BootstrappedScoreEstimator

__all__ = ["BootstrappedScoreEstimator"]
__version__ = "0.1.0.dev0"
