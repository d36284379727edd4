"""Tables with categorical columns: dtypes, frequencies, the likelihood's bound, conditioning."""

import itertools

import numpy as np
import pytest

from sklearn_diffusion import BootstrappedScoreEstimator
from sklearn_diffusion._tabular import TableCodec, categorical_columns
from sklearn_diffusion.persistence import save

pd = pytest.importorskip("pandas")

pytestmark = pytest.mark.filterwarnings("ignore:X looks near-discrete")

FAST = dict(hidden_layer_sizes=(32,), max_iter=300, n_networks=1, random_state=0)


def _plant(n=600, seed=0):
    # A machine type (categorical, three kinds), a shift (integer), a
    # temperature that depends on both, and a flag (bool).
    rng = np.random.default_rng(seed)
    kind = rng.choice(["A", "B", "C"], n, p=[0.5, 0.3, 0.2])
    shift = rng.integers(1, 4, n)
    temp = np.select([kind == "A", kind == "B"], [0.0, 3.0], -3.0) + 0.5 * shift
    return pd.DataFrame({
        "kind": pd.Categorical(kind, categories=["A", "B", "C", "D"]),
        "shift": shift,
        "temp": temp + rng.normal(size=n),
        "on": rng.random(n) < 0.3,
        "site": rng.choice(["north", "south"], n).astype(object),
    })


@pytest.fixture(scope="module")
def fitted():
    X = _plant()
    return X, BootstrappedScoreEstimator(**FAST).fit(X)


def test_sample_round_trips_columns_dtypes_and_categories(fitted):
    X, est = fitted
    assert est.n_features_in_ == 5
    assert list(est.feature_names_in_) == list(X.columns)
    S = est.sample(500, random_state=0)
    assert list(S.columns) == list(X.columns)
    assert (S.dtypes == X.dtypes).all()
    assert list(S["kind"].cat.categories) == ["A", "B", "C", "D"]
    assert set(S["site"]) <= {"north", "south"}
    # No category comes back as a float.
    assert all(isinstance(v, str) for v in S["site"])
    assert set(S["shift"]) <= {1, 2, 3}


def test_sampled_frequencies_follow_the_table(fitted):
    X, est = fitted
    S = est.sample(3000, random_state=0)
    real = X["kind"].value_counts(normalize=True)
    fake = S["kind"].value_counts(normalize=True)
    assert np.abs(real - fake).max() < 0.05
    assert fake["D"] == 0  # a category no training row has
    # The continuous column follows the category it belongs to.
    means = S.groupby("kind", observed=True)["temp"].mean()
    truth = X.groupby("kind", observed=True)["temp"].mean()
    assert np.abs(means - truth).max() < 0.5
    assert abs(S["on"].mean() - X["on"].mean()) < 0.05


def test_the_likelihood_bound_sums_below_one_on_a_table_of_categories():
    rng = np.random.default_rng(0)
    kind = rng.choice(["A", "B", "C"], 1000, p=[0.5, 0.3, 0.2])
    on = np.where(kind == "A", rng.random(1000) < 0.8, rng.random(1000) < 0.2)
    X = pd.DataFrame({"kind": kind, "on": on})
    est = BootstrappedScoreEstimator(**{**FAST, "max_iter": 1000}).fit(X)
    grid = pd.DataFrame(list(itertools.product(["A", "B", "C"], [False, True])),
                        columns=["kind", "on"])
    total = np.exp(est.score_samples(grid)).sum()
    # A lower bound (estimated with 8 fixed draws): below 1 up to their
    # noise, and not vacuous.
    assert 0.6 < total < 1.05


def test_conditional_draws_take_and_return_tables(fitted):
    X, est = fitted
    query = pd.DataFrame({"kind": ["B", None], "shift": [3, np.nan], "temp": [np.nan, -3.0],
                          "on": [None, True], "site": ["north", None]})
    draws = est.sample_conditional(query, n_samples=200, random_state=0)
    assert draws.shape == (400, 5)
    assert draws.index.names == ["draw", "row"]
    first = draws.xs(0, level="row")
    assert (first["kind"] == "B").all() and (first["shift"] == 3).all()
    assert (first["site"] == "north").all()
    assert abs(first["temp"].mean() - 4.5) < 0.6  # 3 for B, plus 0.5 a shift
    second = draws.xs(1, level="row")
    assert (second["temp"] == -3.0).all()
    # Cold rows are C machines.
    assert (second["kind"] == "C").mean() > 0.7


def test_scores_of_mixed_rows(fitted):
    X, est = fitted
    log_p = est.score_samples(X.head(20))
    assert np.isfinite(log_p).all()
    odd = X.head(1).copy()
    odd["temp"] = 9.0  # far off the temperature of an A machine
    assert est.score_samples(odd)[0] < np.median(log_p)
    assert est.anomaly_score(odd)[0] > np.median(est.anomaly_score(X.head(20)))


def test_unseen_categories_and_wrong_columns_are_refused(fitted):
    X, est = fitted
    bad = X.head(2).copy()
    bad["site"] = ["east", "north"]
    with pytest.raises(ValueError, match="unseen in fit"):
        est.score_samples(bad)
    with pytest.raises(ValueError, match="feature names"):
        est.score_samples(X.head(2)[list(X.columns[::-1])])


def test_saving_a_model_with_categories_is_refused_clearly(fitted, tmp_path):
    with pytest.raises(ValueError, match="categorical columns"):
        save(fitted[1], tmp_path / "m.skd")


def test_numeric_tables_keep_the_array_path():
    X = _plant()[["shift", "temp"]]
    est = BootstrappedScoreEstimator(**FAST).fit(X)
    assert not hasattr(est, "table_codec_")
    assert isinstance(est.sample(3, random_state=0), np.ndarray)
    # An explicit column makes a numeric column categorical.
    est = BootstrappedScoreEstimator(**FAST, categorical_features=["shift"]).fit(X)
    assert est.table_codec_.categories == ((1, 2, 3),)


@pytest.mark.parametrize("spec, expected", [
    ("from_dtype", [0, 3, 4]), (None, []), (["temp", "kind"], [0, 2]), ([1], [1]),
    ([False, True, False, False, False], [1]),
])
def test_categorical_features_forms(spec, expected):
    X = _plant(n=10)
    assert categorical_columns(X, spec).tolist() == expected


@pytest.mark.parametrize("spec", ["dtype", ["nope"], [7], [True, False]])
def test_bad_categorical_features_are_refused(spec):
    with pytest.raises(ValueError):
        categorical_columns(_plant(n=10), spec)


def test_codec_cells_are_disjoint_and_decode_back():
    X = _plant(n=50)
    codec = TableCodec.fit(X, categorical_columns(X, "from_dtype"))
    for offset in (0.0, 0.5, 0.999):
        coded = codec.encode(X, np.full(codec.n_offsets, offset))
        pd.testing.assert_frame_equal(codec.decode(coded), X)


def test_the_detector_scores_mixed_rows_and_names_the_column():
    from sklearn_diffusion import DiffusionOutlierDetector

    X = _plant(n=800)
    det = DiffusionOutlierDetector(BootstrappedScoreEstimator(**FAST)).fit(X)
    test = _plant(n=200, seed=1)
    hot = test.copy()
    hot["temp"] += 4.0  # every machine 4 degrees off its kind
    scores = np.r_[det.score_samples(test), det.score_samples(hot)]
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(np.r_[np.zeros(200), np.ones(200)], -scores) > 0.9
    blame = det.feature_scores(hot)
    assert blame.shape == (200, 5)
    assert (blame.argmax(axis=1) == 2).mean() > 0.8  # the temperature


def test_the_imputer_fills_categories_with_categories():
    from sklearn_diffusion import DiffusionImputer

    X = _plant(n=800)
    holed = X.copy()
    rng = np.random.default_rng(0)
    gone = rng.random(len(X)) < 0.2
    holed["kind"] = holed["kind"].where(~gone)  # the category is missing, temp is observed
    imp = DiffusionImputer(BootstrappedScoreEstimator(**FAST), n_samples=8,
                           random_state=0).fit(holed)
    filled = imp.transform(holed)
    assert (filled.dtypes == X.dtypes).all()
    assert not filled.isna().any().any()
    pd.testing.assert_frame_equal(filled[~gone], X[~gone])
    with pytest.raises(ValueError, match="DataFrame"):
        imp.transform(holed.to_numpy())
    # The temperature tells the kind: far better than the most common kind
    # (A, half the rows); HistGradientBoostingClassifier on the complete rows gets 0.80.
    assert (filled["kind"][gone] == X["kind"][gone]).mean() > 0.7


def test_arrays_with_categorical_positions_stay_arrays():
    from sklearn_diffusion import DiffusionImputer, DiffusionOutlierDetector

    rng = np.random.default_rng(0)
    X = np.column_stack([rng.integers(0, 3, 300), rng.normal(size=300)])
    est = BootstrappedScoreEstimator(**FAST, categorical_features=[0])
    S = est.fit(X).sample(50, random_state=0)
    assert isinstance(S, np.ndarray) and S.dtype == np.float64
    assert set(S[:, 0]) <= {0.0, 1.0, 2.0}
    draws = est.sample_conditional([[np.nan, 0.5]], n_samples=4, random_state=0)
    assert draws.shape == (4, 1, 2) and set(draws[:, 0, 0]) <= {0.0, 1.0, 2.0}
    det = DiffusionOutlierDetector(est).fit(X)
    assert det.score_samples(X[:5]).shape == (5,)
    with pytest.raises(ValueError, match="DataFrame"):
        DiffusionImputer(est).fit(X)


def test_the_localized_estimator_refuses_text_columns_clearly():
    from sklearn_diffusion import LocalizedDiffusionEstimator

    X = _plant(n=50)
    with pytest.raises(ValueError, match=r"numeric columns only.*'kind'"):
        LocalizedDiffusionEstimator(locality=(5,), max_iter=10).fit(X)
    # Booleans are numbers to it, as before.
    numeric = X[["shift", "temp", "on"]]
    LocalizedDiffusionEstimator(locality=(3,), radius=1, hidden_layer_sizes=(8,), max_iter=10,
                                random_state=0).fit(numeric)
