"""polars and pyarrow tables as input (no hard dependency), and a clear error otherwise.

The fits from a converted table must be the fits from the pandas DataFrame it holds:
the same numbers to the last bit (the same design, the same optimiser path).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixeff
from mixeff import DataError
from mixeff._frames import as_pandas

pa = pytest.importorskip("pyarrow")

FORMULA = "height ~ week * C(temp) + (1 | plant_id)"


@pytest.fixture(scope="module")
def plants() -> pd.DataFrame:
    return mixeff.datasets.load_plant_growth()


@pytest.fixture(scope="module")
def reference(plants):
    return mixeff.lmer(FORMULA, plants)


def _same_fit(a, b):
    assert a.objective == b.objective
    np.testing.assert_array_equal(a.theta, b.theta)
    np.testing.assert_array_equal(a.fixef.to_numpy(), b.fixef.to_numpy())
    assert list(a.fixef.index) == list(b.fixef.index)
    assert a.ngroups == b.ngroups


def test_pyarrow_table(plants, reference):
    table = pa.Table.from_pandas(plants, preserve_index=False)
    _same_fit(mixeff.lmer(FORMULA, table), reference)
    lm_ref = mixeff.lm("height ~ week * C(temp)", plants)
    lm_pa = mixeff.lm("height ~ week * C(temp)", table)
    np.testing.assert_array_equal(lm_pa.coef.to_numpy(), lm_ref.coef.to_numpy())


def test_pyarrow_dictionary_and_nulls(plants, reference):
    """A dictionary-encoded grouping column and a null response row."""
    d = plants.copy()
    d.loc[5, "height"] = np.nan
    table = pa.table({
        "plant_id": pa.array(d["plant_id"].astype(str)).dictionary_encode(),
        "temp": pa.array(d["temp"]), "week": pa.array(d["week"]),
        "height": pa.array(d["height"], from_pandas=True)})
    assert table.column("height").null_count == 1
    fit = mixeff.lmer(FORMULA, table)
    _same_fit(fit, mixeff.lmer(FORMULA, d))
    assert fit.nobs == 239


def test_arrow_c_stream_only(plants, reference):
    """An object that offers only the Arrow C stream interface."""
    table = pa.Table.from_pandas(plants, preserve_index=False)

    class Stream:
        def __arrow_c_stream__(self, requested_schema=None):
            return table.__arrow_c_stream__(requested_schema)

    _same_fit(mixeff.lmer(FORMULA, Stream()), reference)


def test_polars(plants, reference):
    pl = pytest.importorskip("polars")
    frame = pl.from_dict({c: plants[c].tolist() for c in plants.columns})
    _same_fit(mixeff.lmer(FORMULA, frame), reference)
    frame = frame.with_columns(pl.col("plant_id").cast(pl.Categorical))
    _same_fit(mixeff.lmer(FORMULA, frame), reference)


@pytest.mark.parametrize("bad,name", [([[1, 2], [3, 4]], "list"),
                                      ({"height": [1.0, 2.0]}, "dict"),
                                      (np.zeros((3, 2)), "numpy.ndarray"),
                                      (42, "int")])
def test_other_inputs_get_one_clear_error(bad, name):
    with pytest.raises(DataError, match=rf"data must be a pandas DataFrame, a polars or "
                                        rf"pyarrow table.*got {name}"):
        mixeff.lmer("y ~ x + (1 | g)", bad)
    with pytest.raises(DataError, match=rf"got {name}"):
        mixeff.lm("y ~ x", bad)


def test_series_is_explained(plants):
    with pytest.raises(DataError, match="not a pandas Series"):
        as_pandas(plants["height"])
