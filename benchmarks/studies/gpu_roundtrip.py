# Record: none (a manual two-machine check; its output was not kept).
# Ran at 3948d37. Not maintained.
"""Fit on a GPU and pickle, so the pickle can be loaded on a CPU-only machine.

Run on a machine with CUDA: ``python benchmarks/studies/gpu_roundtrip.py OUT_DIR``;
then on a CPU-only machine ``python benchmarks/studies/gpu_roundtrip.py --check OUT_DIR``.
"""

import pickle
import sys
from pathlib import Path

import numpy as np

from sklearn_diffusion import BootstrappedScoreEstimator

X = np.random.default_rng(0).normal(size=(500, 4))

if __name__ == "__main__":
    out = Path(sys.argv[-1])
    if "--check" in sys.argv:
        est = pickle.loads((out / "gpu_model.pkl").read_bytes())
        ref = np.load(out / "gpu_scores.npy")
        got = est.score_samples(X)
        print("fitted on", est.device_, "| max |cpu - gpu| score_samples:", np.abs(got - ref).max())
    else:
        est = BootstrappedScoreEstimator(max_iter=300, random_state=0).fit(X)
        assert est.device_.startswith("cuda"), est.device_
        (out / "gpu_model.pkl").write_bytes(pickle.dumps(est))
        np.save(out / "gpu_scores.npy", est.score_samples(X))
        print("fitted on", est.device_, "mean log-density", est.score(X))
