"""scikit-learn's estimator checks over every public estimator."""

import torch
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_diffusion import (
    BootstrappedScoreEstimator,
    DiffusionImputer,
    DiffusionOutlierDetector,
    LocalizedDiffusionEstimator,
)

# Small networks and few steps: the checks test the API, not the fit. On the
# CPU a row's result is bit-identical whatever its batch-mates (rows are
# padded to a fixed kernel choice); cuBLAS picks kernels by batch size beyond
# that, so on a GPU rows agree to float32 rounding only (~1e-6 relative), less
# than the 1e-7 the subset-invariance check asks. The checks run on the CPU.
FAST = dict(hidden_layer_sizes=(16,), max_iter=20, n_steps=4, random_state=0, device="cpu")

ESTIMATORS = [
    BootstrappedScoreEstimator(**FAST, loss="bootstrap"),
    BootstrappedScoreEstimator(**FAST, sampler="sde", divergence="hutchinson",
                               objective="flow_matching"),
    LocalizedDiffusionEstimator(**FAST, radius=1, loss="bootstrap"),
    LocalizedDiffusionEstimator(**FAST, radius=1, shared=True),
    LocalizedDiffusionEstimator(**FAST, radius=1, locality="auto", block_size=2, sampler="sde"),
    LocalizedDiffusionEstimator(**FAST, radius=1, n_global_components=2),
    DiffusionOutlierDetector(BootstrappedScoreEstimator(**FAST), n_levels=4),
    DiffusionOutlierDetector(
        BootstrappedScoreEstimator(**FAST), method="denoising", n_levels=4, contamination=0.1
    ),
    DiffusionOutlierDetector(LocalizedDiffusionEstimator(**FAST, radius=1), n_levels=4),
    DiffusionImputer(BootstrappedScoreEstimator(**FAST), n_samples=2, random_state=0),
    DiffusionImputer(LocalizedDiffusionEstimator(**FAST, radius=1), sample_posterior=True,
                     random_state=0),
]

# No check is expected to fail.
EXPECTED_FAILED_CHECKS = {}


@parametrize_with_checks(
    ESTIMATORS, expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS.get(type(est).__name__, {})
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


# The defaults, exactly as a user gets them: a default such as radius=2 must
# suit the checks' small data too. On a GPU (device="auto") rows agree to
# float32 rounding only, which the subset-invariance check does not allow.
DEFAULTS = [
    BootstrappedScoreEstimator(),
    LocalizedDiffusionEstimator(),
    DiffusionOutlierDetector(),
    DiffusionImputer(),
]
GPU_ROUNDING = {
    "check_methods_subset_invariance": "rows agree to float32 rounding on a GPU",
    "check_methods_sample_order_invariance": "rows agree to float32 rounding on a GPU",
}


@parametrize_with_checks(
    DEFAULTS, expected_failed_checks=lambda est: GPU_ROUNDING if torch.cuda.is_available() else {}
)
def test_sklearn_compatible_with_default_parameters(estimator, check):
    check(estimator)
