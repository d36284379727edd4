"""Saving and loading without pickle, and the public API's documentation."""

import io
import pickle
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import sklearn_diffusion
from sklearn_diffusion import BootstrappedScoreEstimator, LocalizedDiffusionEstimator
from sklearn_diffusion.persistence import _DIGEST_SIZE, _HEADER, _read, _write, load, save

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
    # The restricted unpickler accepts what follows the header and the
    # digest: only tensors and plain containers.
    body = (tmp_path / "model.skd").read_bytes()[len(_HEADER) + _DIGEST_SIZE:]
    payload = torch.load(io.BytesIO(body), weights_only=True)
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


# ----------------------------------------------- detector, and malformed files
from sklearn_diffusion import DiffusionOutlierDetector  # noqa: E402

SMALL = dict(hidden_layer_sizes=(8,), max_iter=20, n_steps=4, random_state=0)


@pytest.mark.parametrize(
    "detector",
    [
        DiffusionOutlierDetector(BootstrappedScoreEstimator(**SMALL), n_levels=4),
        DiffusionOutlierDetector(BootstrappedScoreEstimator(**SMALL), method="log_density"),
        DiffusionOutlierDetector(LocalizedDiffusionEstimator(**SMALL, radius=1), n_levels=4,
                                 method="denoising", contamination=0.1),
    ],
)
def test_detector_round_trip(detector, tmp_path):
    detector.fit(X)
    save(detector, tmp_path / "detector.skd")
    loaded = load(tmp_path / "detector.skd")
    assert type(loaded.estimator_) is type(detector.estimator_)
    assert repr(loaded.get_params()) == repr(detector.get_params())
    np.testing.assert_array_equal(loaded.decision_function(X), detector.decision_function(X))
    np.testing.assert_array_equal(loaded.predict(X), detector.predict(X))


@pytest.mark.parametrize("make", [BootstrappedScoreEstimator, LocalizedDiffusionEstimator])
def test_imputer_round_trip(make, tmp_path):
    from sklearn_diffusion import DiffusionImputer

    holes = X.copy()
    holes[::4, 1] = np.nan
    imputer = DiffusionImputer(make(**SMALL), n_samples=2, random_state=0).fit(holes)
    save(imputer, tmp_path / "imputer.skd")
    loaded = load(tmp_path / "imputer.skd")
    assert type(loaded.estimator_) is type(imputer.estimator_)
    np.testing.assert_array_equal(loaded.transform(holes[:8]), imputer.transform(holes[:8]))


def test_integer_seed_types_survive(tmp_path):
    est = BootstrappedScoreEstimator(**{**SMALL, "random_state": np.int64(7)}).fit(X)
    save(est, tmp_path / "model.skd")
    assert load(tmp_path / "model.skd").random_state == 7


@pytest.fixture(scope="module")
def payload(tmp_path_factory):
    path = tmp_path_factory.mktemp("good") / "model.skd"
    save(BootstrappedScoreEstimator(**SMALL).fit(X), path)
    return _read(path)


def _edit(payload, change):
    import copy

    payload = copy.deepcopy(payload)
    change(payload)
    return payload


def _fitted(key, value):
    def change(p):
        p["fitted"][key] = value
    return change


MALFORMED = {
    "empty": b"",
    "random bytes": bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8)),
    "text": b"a model, honestly",
    "a list": [1, 2, 3],
    "a tensor": torch.zeros(3),
    "a string": "model",
    "no weights": lambda p: p.pop("weights"),
    "no mean_": lambda p: p["fitted"].pop("mean_"),
    "an extra key": lambda p: p.update(extra=1),
    "a method as attribute": _fitted("score_samples", 1),
    "__dict__ as attribute": _fitted("__dict__", {"__tuple__": []}),
    "mean_ of the wrong shape": _fitted("mean_", {"__ndarray__": torch.zeros(7, dtype=torch.float64)}),
    "negative scale_": _fitted("scale_", {"__ndarray__": -torch.ones(5, dtype=torch.float64)}),
    "n_features_in_ inconsistent": _fitted("n_features_in_", 6),
    "a tensor of the wrong shape": lambda p: p["weights"].update(
        {k: torch.zeros(3) for k in list(p["weights"])[:1]}
    ),
    "a missing tensor": lambda p: p["weights"].pop(next(iter(p["weights"]))),
    "non-finite weights": lambda p: [v.fill_(float("nan")) for v in p["weights"].values()],
    "a huge network": lambda p: p["params"].update(hidden_layer_sizes={"__tuple__": [10_000_000]}),
    "an unknown class": lambda p: p.update({"class": "os.system"}),
    "invalid parameters": lambda p: p["params"].update(learning_rate=-1.0),
    "a short random state": lambda p: p["params"].update(
        random_state={"__random_state__": ["MT19937", torch.zeros(3, dtype=torch.int64), 0, 0, 0.0]}
    ),
    "a random state out of range": lambda p: p["params"].update(
        random_state={"__random_state__": ["MT19937", torch.full((624,), 2**32), 0, 0, 0.0]}
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
def test_malformed_files_are_one_clear_error(case, payload, tmp_path):
    content = MALFORMED[case]
    path = tmp_path / "bad.skd"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        # Sealed with a valid digest, so the checks behind it are what refuses.
        _write(_edit(payload, content) if callable(content) else content, path)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load(path)


# ------------------------------------------------- integrity, random states
@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("small") / "model.skd"
    tiny = dict(hidden_layer_sizes=(4,), max_iter=5, n_steps=4, random_state=0)
    save(BootstrappedScoreEstimator(**tiny).fit(X[:40, :2]), path)
    return path.read_bytes()


def test_every_flipped_byte_is_refused(small_file, tmp_path):
    # 200 positions from the first byte to the last: header, digest, the
    # archive's records and padding, tensors and strings.
    positions = np.unique(np.linspace(0, len(small_file) - 1, 200).astype(int))
    masks = np.random.default_rng(0).integers(1, 256, len(positions))
    path = tmp_path / "flipped.skd"
    for position, mask in zip(positions, masks):
        data = bytearray(small_file)
        data[position] ^= int(mask)
        path.write_bytes(bytes(data))
        with pytest.raises(ValueError, match="corrupted or was modified|not a file written"):
            load(path)


@pytest.mark.parametrize("keep", [1, len(_HEADER), len(_HEADER) + _DIGEST_SIZE, 0.5, -1])
def test_a_truncated_file_is_refused(keep, small_file, tmp_path):
    keep = int(len(small_file) * keep) if isinstance(keep, float) else keep
    path = tmp_path / "truncated.skd"
    data = small_file[:keep]
    path.write_bytes(data)
    # Past the header it is the digest that refuses, before the payload is parsed.
    reason = "not a file written" if len(data) < len(_HEADER) else "corrupted or was modified"
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + reason):
        load(path)


def test_a_format_1_file_is_refused_with_advice(payload, tmp_path):
    # Format 1 was the payload as torch.save writes it, without a digest.
    path = tmp_path / "old.skd"
    torch.save({**payload, "format": 1}, path)
    with pytest.raises(ValueError, match="no integrity digest.*save it again"):
        load(path)


def test_a_random_state_instance_continues_its_stream(tmp_path):
    from sklearn_diffusion import DiffusionImputer

    holes = X.copy()
    holes[::4, 1] = np.nan
    imputer = DiffusionImputer(BootstrappedScoreEstimator(**SMALL), n_samples=2,
                               random_state=np.random.RandomState(0)).fit(holes)
    imputer.transform(holes[:8])  # the saved state is mid-stream, not the seed's
    save(imputer, tmp_path / "imputer.skd")
    loaded = load(tmp_path / "imputer.skd")
    assert isinstance(loaded.random_state, np.random.RandomState)
    for _ in range(2):
        np.testing.assert_array_equal(loaded.transform(holes[:8]), imputer.transform(holes[:8]))


def test_an_estimator_random_state_instance_survives(tmp_path):
    est = BootstrappedScoreEstimator(**{**SMALL, "random_state": np.random.RandomState(3)}).fit(X)
    save(est, tmp_path / "model.skd")
    loaded = load(tmp_path / "model.skd").random_state
    for got, want in zip(loaded.get_state(), est.random_state.get_state()):
        np.testing.assert_array_equal(got, want)


def test_localized_choices_survive_and_old_files_still_load(tmp_path):
    est = LocalizedDiffusionEstimator(radius="auto", hidden_layer_sizes=(8,), max_iter=20,
                                      random_state=0).fit(X)
    save(est, tmp_path / "auto.skd")
    loaded = load(tmp_path / "auto.skd")
    assert (loaded.radius_, loaded.shared_) == (est.radius_, est.shared_)
    np.testing.assert_array_equal(loaded.radius_scores_, est.radius_scores_)
    # A file written before radius_ and shared_ existed: they are the parameters.
    fixed = LocalizedDiffusionEstimator(radius=1, shared=True, hidden_layer_sizes=(8,),
                                        max_iter=20, random_state=0).fit(X)
    save(fixed, tmp_path / "new.skd")
    old = _edit(_read(tmp_path / "new.skd"), lambda p: [
        p["fitted"].pop(k) for k in ("radius_", "radius_scores_", "shared_")])
    _write(old, tmp_path / "old.skd")
    loaded = load(tmp_path / "old.skd")
    assert (loaded.radius_, loaded.shared_) == (1.0, True)
    np.testing.assert_array_equal(loaded.score_samples(X), fixed.score_samples(X))
    # ... but radius="auto" without the radius it chose is not a valid file.
    auto = _edit(_read(tmp_path / "auto.skd"), lambda p: p["fitted"].pop("radius_"))
    _write(auto, tmp_path / "broken.skd")
    with pytest.raises(ValueError, match="radius_ is missing"):
        load(tmp_path / "broken.skd")


def test_a_file_without_a_parameter_added_later_takes_its_default(tmp_path):
    est = BootstrappedScoreEstimator(**SMALL).fit(X)
    save(est, tmp_path / "new.skd")
    old = _edit(_read(tmp_path / "new.skd"), lambda p: p["params"].pop("bootstrap_draws"))
    _write(old, tmp_path / "old.skd")
    loaded = load(tmp_path / "old.skd")
    assert loaded.bootstrap_draws == BootstrappedScoreEstimator().bootstrap_draws
    np.testing.assert_array_equal(loaded.score_samples(X[:5]), est.score_samples(X[:5]))
    # Any other missing parameter is still a malformed file.
    broken = _edit(_read(tmp_path / "new.skd"), lambda p: p["params"].pop("max_iter"))
    _write(broken, tmp_path / "broken.skd")
    with pytest.raises(ValueError, match="parameters"):
        load(tmp_path / "broken.skd")


def test_a_file_from_before_dequantization_loads_without_it(tmp_path):
    # Models saved before grid columns were dequantized were fitted without:
    # the file takes dequantize=False (not today's default), so a refit of
    # it trains as it did, and has no grid_steps_.
    est = BootstrappedScoreEstimator(**SMALL).fit(X)
    save(est, tmp_path / "new.skd")
    old = _edit(_read(tmp_path / "new.skd"), lambda p: (p["params"].pop("dequantize"),
                                                         p["fitted"].pop("grid_steps_")))
    _write(old, tmp_path / "old.skd")
    loaded = load(tmp_path / "old.skd")
    assert loaded.dequantize is False and BootstrappedScoreEstimator().dequantize is True
    assert not hasattr(loaded, "grid_steps_")
    np.testing.assert_array_equal(loaded.score_samples(X[:5]), est.score_samples(X[:5]))


def test_a_file_from_before_objective_auto_loads_with_score_matching(tmp_path):
    # Before objective="auto" files took objective="score" by default (or had
    # no objective at all): they load with the objective they were fitted
    # with, not today's default, and without objective_.
    est = BootstrappedScoreEstimator(**SMALL).fit(X)
    assert est.objective_ == "score"
    save(est, tmp_path / "new.skd")
    old = _edit(_read(tmp_path / "new.skd"), lambda p: (p["params"].pop("objective"),
                                                         p["fitted"].pop("objective_")))
    _write(old, tmp_path / "old.skd")
    loaded = load(tmp_path / "old.skd")
    assert loaded.objective == "score" and BootstrappedScoreEstimator().objective == "auto"
    assert not hasattr(loaded, "objective_")
    assert load(tmp_path / "new.skd").objective_ == "score"
    np.testing.assert_array_equal(loaded.score_samples(X[:5]), est.score_samples(X[:5]))
