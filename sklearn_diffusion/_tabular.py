"""Tables with categorical columns: their codes for the diffusion, and back (L4, private).

A categorical column with ``K`` categories becomes continuous coordinates in
which each category owns a cell of volume one, disjoint from the others
(uniform dequantization, as normalizing flows take discrete data):

* ``K <= 2``: one coordinate; category ``k`` is the interval ``[k, k + 1)``.
* ``K >= 3``: ``K`` coordinates; category ``k`` is the unit cube whose
  ``k``-th coordinate is in ``[1, 2)`` and the others in ``[0, 1)``, inside
  the region where coordinate ``k`` is the largest.

Dequantization fills the central part of the cell, of side
:data:`CELL_WIDTH` (category ``k`` of two is ``[k + 0.25, k + 0.75)``), so
that neighbouring categories stay apart. These coordinates are standardized
and never Gaussianized: a map to a normal law would close the gaps.

A sample is decoded by the region it falls in (the interval, or the argmax),
so the probability of a category is at least the model's mass on its cell.
With the dequantization ``q`` uniform on the central part (``log q = -m log
w`` for ``m`` coordinates of side ``w``), Jensen's inequality bounds the
log-probability of a mixed row from below:
``log P(k, x) >= E_q[log p(k + u, x)] + m log w``, and the log of the mean of
``p / q`` over ``M`` draws of ``u`` is a bound too, in expectation, and a
tighter one (importance weighting; Burda, Grosse and Salakhutdinov 2016).
"""

from dataclasses import dataclass
from numbers import Integral

import numpy as np
from sklearn.utils import check_array, check_random_state
from sklearn.utils.validation import validate_data

from ._validation import MAX_SEED


#: Side of the part of each cell that dequantization fills, centred in the
#: cell. The gap left between categories keeps the sampled categories apart
#: from their neighbours: whole cells (1.0) lost 0.02 to 0.04 of ML
#: efficacy on three of four tables of ``benchmarks/synthesis.py``, and 0.5
#: was the choice of three of the four leave-one-table-out folds against
#: 0.2 (``benchmarks/results/studies/synthesis_domain.md``).
CELL_WIDTH = 0.5


def _is_frame(X):
    return hasattr(X, "columns") and hasattr(X, "dtypes") and hasattr(X, "iloc")


def _as_array(frame):
    # Floats where every category is a number, objects otherwise.
    try:
        return frame.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        return frame.to_numpy(dtype=object)


def categorical_columns(X, categorical_features):
    """Positions of the categorical columns of ``X`` that ``categorical_features`` names.

    ``"from_dtype"``: the ``category``, ``object``, ``bool`` and string
    columns of a pandas DataFrame (none for an array). None: none. Else
    column names, positions, or a boolean mask of length ``n_features``.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_diffusion._tabular import categorical_columns
    >>> X = pd.DataFrame({"t": [1.0, 2.0], "kind": ["a", "b"], "on": [True, False]})
    >>> categorical_columns(X, "from_dtype").tolist()
    [1, 2]
    >>> categorical_columns(X, ["kind"]).tolist()
    [1]
    """
    none = np.array([], dtype=int)
    if categorical_features is None:
        return none
    if isinstance(categorical_features, str):
        if categorical_features != "from_dtype":
            raise ValueError("categorical_features must be 'from_dtype', None, names, positions "
                             f"or a boolean mask, got {categorical_features!r}.")
        if not _is_frame(X):
            return none
        from pandas.api import types

        kinds = [isinstance(dtype, types.CategoricalDtype) or types.is_object_dtype(dtype)
                 or types.is_bool_dtype(dtype) or types.is_string_dtype(dtype)
                 for dtype in X.dtypes]
        return np.flatnonzero(kinds)
    shape = np.shape(X) if _is_frame(X) else np.shape(np.asarray(X, dtype=object))
    if len(shape) != 2:
        return none  # validate_data then says what is wrong with X
    n_features = shape[1]
    chosen = np.asarray(categorical_features)
    if chosen.dtype == bool:
        if chosen.shape != (n_features,):
            raise ValueError(f"A boolean categorical_features must have {n_features} entries, "
                             f"got shape {chosen.shape}.")
        return np.flatnonzero(chosen)
    if chosen.dtype.kind in "OU":
        if not _is_frame(X):
            raise ValueError("categorical_features names columns, but X has no column names.")
        names = [str(c) for c in X.columns]
        unknown = [c for c in chosen.tolist() if str(c) not in names]
        if unknown:
            raise ValueError(f"categorical_features names unknown columns {unknown}.")
        return np.array(sorted(names.index(str(c)) for c in chosen.tolist()), dtype=int)
    if chosen.ndim != 1 or not all(isinstance(c, Integral) for c in chosen.tolist()):
        raise ValueError("categorical_features must be 'from_dtype', None, column names, "
                         f"positions or a boolean mask, got {categorical_features!r}.")
    if len(chosen) and not ((chosen >= 0) & (chosen < n_features)).all():
        raise ValueError(f"categorical_features has positions outside [0, {n_features}).")
    return np.unique(chosen)


def _missing(values):
    # None, NaN, pd.NA and NaT are missing; strings and categories are not.
    import pandas as pd

    return np.asarray(pd.isna(values), dtype=bool)


@dataclass(frozen=True)
class TableCodec:
    """The coordinates of a mixed table (see the module's docstring) and the way back.

    ``categorical`` holds the positions of the categorical columns,
    ``categories`` the categories of each (in code order), ``dtypes`` the
    dtype of every column, ``columns`` their names.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_diffusion._tabular import TableCodec
    >>> X = pd.DataFrame({"t": [1.5, 2.0, 0.5], "kind": ["a", "b", "c"]})
    >>> codec = TableCodec.fit(X, [1])
    >>> codec.width
    4
    >>> codec.encode(X).tolist()[1]
    [2.0, 0.5, 1.5, 0.5]
    >>> codec.decode(codec.encode(X)).equals(X)
    True
    """

    columns: tuple
    dtypes: tuple
    categorical: tuple
    categories: tuple
    frame: bool = True  #: whether fit saw a DataFrame (else arrays come back)

    @classmethod
    def fit(cls, X, categorical):
        """The codec of the table ``X`` whose columns at ``categorical`` are categorical."""
        import pandas as pd

        frame = X if _is_frame(X) else pd.DataFrame(np.asarray(X, dtype=object))
        categories = []
        for j in categorical:
            column = frame.iloc[:, j]
            seen = column[~_missing(column.to_numpy(dtype=object))]
            if isinstance(column.dtype, pd.CategoricalDtype):
                # The dtype's order; a category no row has gets no cell (never sampled).
                levels = [c for c in column.cat.categories if c in set(seen)]
            else:
                try:
                    levels = sorted(pd.unique(seen))
                except TypeError:  # values that do not compare: order of appearance
                    levels = list(pd.unique(seen))
            if not levels:
                raise ValueError(f"Categorical column {frame.columns[j]!r} has no observed value.")
            categories.append(tuple(levels))
        return cls(tuple(frame.columns), tuple(frame.dtypes), tuple(int(j) for j in categorical),
                   tuple(categories), _is_frame(X))

    @property
    def _sizes(self):
        # Coordinates of each column, in column order.
        sizes = [1] * len(self.columns)
        for j, levels in zip(self.categorical, self.categories):
            sizes[j] = len(levels) if len(levels) > 2 else 1
        return sizes

    @property
    def width(self):
        """Number of coordinates of the coded rows."""
        return int(sum(self._sizes))

    @property
    def category_coordinates(self):
        """Positions of the coded coordinates that belong to categorical columns."""
        starts = np.cumsum([0] + self._sizes[:-1])
        return np.concatenate([np.arange(starts[j], starts[j] + self._sizes[j])
                               for j in self.categorical]).astype(int)

    @property
    def log_dequantization_volume(self):
        """``-log q`` of the dequantization: the log-volume of the part of a cell it fills."""
        return self.n_offsets * float(np.log(CELL_WIDTH))

    @property
    def n_offsets(self):
        """Number of dequantization offsets a row takes (one per coordinate of a category)."""
        return int(sum(self._sizes[j] for j in self.categorical))

    def column_sums(self, terms):
        """Per-coordinate ``terms`` (n, width) summed over each column's coordinates."""
        ends = np.cumsum(self._sizes)
        return np.add.reduceat(terms, ends - np.asarray(self._sizes), axis=1)

    def _frame(self, X):
        import pandas as pd

        if _is_frame(X):
            return X
        return pd.DataFrame(np.asarray(X, dtype=object), columns=list(self.columns))

    def encode(self, X, offsets=None):
        """Coded rows (n, width) of the table ``X``, NaN at missing entries.

        ``offsets`` (n, n_offsets) or (n_offsets,) in ``[0, 1)``: the
        dequantization of each category coordinate; None takes the cells'
        centres (0.5). Raises ``ValueError`` on a category unseen in ``fit``.
        """
        frame = self._frame(X)
        n = len(frame)
        offsets = np.broadcast_to(0.5 if offsets is None else offsets, (n, self.n_offsets))
        sizes, out, used = self._sizes, [], 0
        category_of = dict(zip(self.categorical, self.categories))
        for j, size in enumerate(sizes):
            column = frame.iloc[:, j]
            if j not in category_of:
                try:
                    out.append(np.asarray(column, dtype=np.float64)[:, None])
                except (TypeError, ValueError):
                    raise ValueError(
                        f"Column {self.columns[j]!r} was numeric in fit but holds "
                        "values that are not numbers."
                    ) from None
                continue
            levels = category_of[j]
            values = column.to_numpy(dtype=object)
            gap = _missing(values)
            index = {level: k for k, level in enumerate(levels)}
            codes = np.zeros(n, dtype=int)
            for i in np.flatnonzero(~gap):
                try:
                    codes[i] = index[values[i]]
                except (KeyError, TypeError):
                    raise ValueError(
                        f"Column {self.columns[j]!r} has the category {values[i]!r}, "
                        f"unseen in fit (known: {list(levels)})."
                    ) from None
            u = 0.5 + CELL_WIDTH * (offsets[:, used:used + size].astype(np.float64) - 0.5)
            if size == 1:
                block = codes[:, None] + u
            else:
                block = u.copy()
                block[np.arange(n), codes] += 1.0
            block[gap] = np.nan
            out.append(block)
            used += size
        return np.hstack(out) if out else np.empty((n, 0))

    def decode(self, U):
        """The table (a pandas DataFrame with the fitted columns and dtypes) of coded rows ``U``."""
        import pandas as pd

        category_of = dict(zip(self.categorical, self.categories))
        columns, start = {}, 0
        for j, size in enumerate(self._sizes):
            block = U[:, start:start + size]
            start += size
            dtype = self.dtypes[j]
            if j not in category_of:
                values = block[:, 0]
                whole = np.isfinite(values).all() and (values == np.round(values)).all()
                kind = getattr(dtype, "kind", "f")
                # An integer column stays one when its samples are whole (sample_domain="data").
                columns[j] = pd.Series(values).astype(dtype) if kind in "iu" and whole \
                    else pd.Series(values)
                continue
            levels = category_of[j]
            if size == 1:
                codes = np.clip(np.floor(block[:, 0]), 0, len(levels) - 1).astype(int)
            else:
                codes = np.argmax(block, axis=1)
            values = np.empty(len(U), dtype=object)
            values[:] = [levels[k] for k in codes]
            if isinstance(dtype, pd.CategoricalDtype):
                columns[j] = pd.Series(pd.Categorical(values, dtype=dtype))
            else:
                columns[j] = pd.Series(values).astype(dtype)
        frame = pd.DataFrame(columns)
        frame.columns = list(self.columns)
        return frame if self.frame else _as_array(frame)

    def decode_draws(self, draws):
        """Conditional draws (n_samples, n_rows, width) as one table, indexed by (draw, row).

        For a codec fitted on an array: an array (n_samples, n_rows, n_features).
        """
        import pandas as pd

        if not self.frame:
            return self.decode(draws.reshape(-1, draws.shape[-1])).reshape(
                draws.shape[0], draws.shape[1], -1)

        n_samples, n_rows, _ = draws.shape
        frame = self.decode(draws.reshape(n_samples * n_rows, -1))
        frame.index = pd.MultiIndex.from_product([range(n_samples), range(n_rows)],
                                                 names=["draw", "row"])
        return frame


def _refuse_text_columns(est, X):
    # An estimator without categorical_features (the localized one) takes
    # numbers and booleans; say so before NumPy fails on a string.
    if not _is_frame(X):
        return
    text = [X.columns[j] for j in categorical_columns(X, "from_dtype")
            if str(X.dtypes.iloc[j]) != "bool"]
    if text:
        raise ValueError(
            f"{type(est).__name__} takes numeric columns only, but X has categorical "
            f"columns {text}; use BootstrappedScoreEstimator (categorical_features) or "
            "code them as numbers first."
        )


#: Dequantization draws per row in ``score_samples`` of a table with categories.
N_DEQUANTIZATIONS = 8


def stratified_offsets(rng, n_draws, n_offsets):
    """``n_draws`` offsets in ``[0, 1)^n_offsets``, one per stratum of each coordinate.

    A Latin hypercube: fewer draws reach a given spread of the bound than independent ones:
    over five sets of 8 on a 3 x 2 table of categories, the probabilities
    of the six cells summed to 0.75 to 0.98 with these, 0.56 to 0.84 with
    independent draws (0.75 with 256 of them).
    """
    strata = np.stack([rng.permutation(n_draws) for _ in range(n_offsets)], axis=1)
    return (strata + rng.uniform(size=(n_draws, n_offsets))) / n_draws


def validate_table(est, X, *, reset=False, allow_nan=False, offsets=None):
    """``validate_data`` of ``est`` that also takes tables with categorical columns.

    Without categorical columns (``est.categorical_features`` names none, or
    the estimator has no such parameter) this is ``validate_data`` itself.
    With them, ``fit`` (``reset``) checks and records the columns' names and
    number, fits ``est.table_codec_`` and draws, from ``est.random_state``,
    each training row's dequantization and the fixed ``dequantization_offsets_`` of
    ``score_samples``; the rows come back coded (:class:`TableCodec`), at
    ``offsets`` (default: the cells' centres) after fit.
    """
    finite = "allow-nan" if allow_nan else True
    checks = dict(dtype=[np.float64, np.float32], ensure_all_finite=finite)
    if reset:
        est.__dict__.pop("table_codec_", None)
        est.__dict__.pop("dequantization_offsets_", None)
        if not hasattr(est, "categorical_features"):
            _refuse_text_columns(est, X)
        categorical = categorical_columns(X, getattr(est, "categorical_features", None))
        if not len(categorical):
            return validate_data(est, X, ensure_min_samples=2, **checks)
        validate_data(est, X, skip_check_array=True)
        codec = TableCodec.fit(X, categorical)
        rng = np.random.default_rng(check_random_state(est.random_state).randint(MAX_SEED))
        rows = codec.encode(X, rng.uniform(size=(len(X), codec.n_offsets)))
        est.table_codec_ = codec
        est.dequantization_offsets_ = stratified_offsets(rng, N_DEQUANTIZATIONS, codec.n_offsets)
        return check_array(rows, ensure_min_samples=2, **checks)
    codec = getattr(est, "table_codec_", None)
    if codec is None:
        return validate_data(est, X, reset=False, **checks)
    validate_data(est, X, reset=False, skip_check_array=True)
    return check_array(codec.encode(X, offsets), **checks)
