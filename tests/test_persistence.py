"""Saving and loading without pickle, and the public API's documentation."""

import pickle
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import sklearn_diffusion
from sklearn_diffusion import BootstrappedScoreEstimator, LocalizedDiffusionEstimator
from sklearn_diffusion.persistence import load, save

X = np.cumsum(np.random.default_rng(0).normal(size=(120, 5)), axis=1)


@pytest.mark.parametrize(
    "estimator",
    [
        BootstrappedScoreEstimator(hidden_layer_sizes=(16,), max_iter=30, random_state=0,
                                   divergence="hutchinson", n_probes=3),
        LocalizedDiffusionEstimator(radius=1, hidden_layer_sizes=(8,), max_iter=30, random_state=0),
        LocalizedDiffusionEstimator(locality=np.eye(5, k=1) + np.eye(5, k=-1), radius=1,
                                    hidden_layer_sizes=(8,), max_iter=30, random_state=0),
    ],
)
def test_save_load_round_trip(estimator, tmp_path):
    estimator.fit(X)
    path = tmp_path / "model.skd"
    save(estimator, path)
    loaded = load(path)
    assert type(loaded) is type(estimator)
    assert repr(loaded.get_params()) == repr(estimator.get_params())
    np.testing.assert_array_equal(loaded.score_samples(X), estimator.score_samples(X))
    np.testing.assert_array_equal(loaded.sample(4, random_state=0), estimator.sample(4, random_state=0))


def test_the_file_holds_no_code(tmp_path):
    est = BootstrappedScoreEstimator(hidden_layer_sizes=(8,), max_iter=10, random_state=0).fit(X)
    save(est, tmp_path / "model.skd")
    # The restricted unpickler accepts it: only tensors and plain containers.
    payload = torch.load(tmp_path / "model.skd", weights_only=True)
    assert payload["class"] == "BootstrappedScoreEstimator"
    # A pickle of the estimator is refused by the same loader.
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(est))
    with pytest.raises(pickle.UnpicklingError), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch notes the pickle protocol first
        torch.load(tmp_path / "model.pkl", weights_only=True)


def test_save_refuses_unfitted_and_foreign(tmp_path):
    with pytest.raises(ValueError, match="not fitted"):
        save(BootstrappedScoreEstimator(), tmp_path / "x.skd")
    from sklearn.neighbors import KernelDensity

    with pytest.raises(TypeError, match="supports"):
        save(KernelDensity().fit(X), tmp_path / "x.skd")


def test_every_public_name_is_in_the_api_reference():
    api = (Path(__file__).resolve().parents[1] / "docs" / "api.rst").read_text()
    listed = set(re.findall(r"^   (\w+)$", api, flags=re.M))
    assert set(sklearn_diffusion.__all__) <= listed
