"""Data frames users have: pandas, and anything that speaks a data-frame protocol.

mixeff works on pandas DataFrames. polars and pyarrow tables (and other libraries' data
frames: cuDF, Modin, Vaex, ...) are converted on the way in, without mixeff depending on
any of them:

1. a pandas DataFrame is used as it is;
2. an object with the dataframe interchange protocol (``__dataframe__``; polars,
   pyarrow ``Table``, ...) goes through ``pandas.api.interchange.from_dataframe``;
3. else an object with the Arrow C stream interface (``__arrow_c_stream__``) goes
   through ``pyarrow.table(obj).to_pandas()`` when pyarrow is installed.

Dictionary-encoded (categorical) columns arrive as pandas categoricals, strings as
strings, nulls as missing values. Anything else is a :class:`~mixeff.DataError` that
says what is accepted.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from ._errors import DataError

__all__ = ["as_pandas"]

ACCEPTED = ("a pandas DataFrame, a polars or pyarrow table (any data frame with the "
            "dataframe interchange protocol, __dataframe__, or the Arrow C stream "
            "interface), a Dask DataFrame or a path or glob of Parquet files")


def _name(obj: Any) -> str:
    t = type(obj)
    mod = t.__module__.split(".")[0]
    return f"{mod}.{t.__qualname__}" if mod not in ("builtins", "__main__") else t.__name__


def as_pandas(data: Any, what: str = "data") -> pd.DataFrame:
    """``data`` as a pandas DataFrame (see the module).

    Parameters
    ----------
    data
        The data given by the user.
    what
        The argument's name, for the error message.

    Raises
    ------
    DataError
        ``data`` is not a data frame mixeff can read, or its conversion failed.
    """
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, (str, os.PathLike)):
        raise DataError(f"{what} {os.fspath(data)!r} is a path but not of Parquet data (a "
                        ".parquet file, a directory of them or a glob): read other files "
                        "first (pandas.read_csv) and pass the DataFrame")
    if isinstance(data, pd.Series):
        raise DataError(f"{what} must be a data frame with one column per variable, not a "
                        "pandas Series (use series.to_frame())")
    if hasattr(data, "__dataframe__"):
        try:
            return pd.api.interchange.from_dataframe(data, allow_copy=True)
        except Exception as exc:
            if not hasattr(data, "__arrow_c_stream__"):
                raise DataError(f"{what}: cannot convert the {_name(data)} to a pandas "
                                f"DataFrame through the dataframe interchange protocol "
                                f"({type(exc).__name__}: {exc})") from None
    if hasattr(data, "__arrow_c_stream__"):
        try:
            import pyarrow as pa
        except ImportError:
            raise DataError(f"{what}: reading a {_name(data)} needs pyarrow "
                            "(pip install pyarrow)") from None
        try:
            return pa.table(data).to_pandas()
        except Exception as exc:
            raise DataError(f"{what}: cannot convert the {_name(data)} to a pandas "
                            f"DataFrame ({type(exc).__name__}: {exc})") from None
    raise DataError(f"{what} must be {ACCEPTED}; got {_name(data)}")
