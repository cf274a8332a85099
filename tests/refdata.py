"""Shared test helpers: the lme4 reference data and stored references (import `refdata`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
REF_DIR = REPO / "tests" / "references" / "lme4"


def data_dir() -> Path:
    """Folder of lme4's data sets as CSV (``MIXEFF_DATA_DIR`` or ``tests/data/lme4``)."""
    return Path(os.environ.get("MIXEFF_DATA_DIR", REPO / "tests" / "data" / "lme4"))


def load_csv(name: str, factors: list[str] | tuple[str, ...] = ()) -> pd.DataFrame:
    """Read one of the reference CSV files, failing the test when it is absent."""
    path = data_dir() / name
    if not path.exists():
        pytest.fail(f"reference data {path} not available")
    df = pd.read_csv(path)
    for f in factors:
        df[f] = df[f].astype(str)
    return df


def load_reference(name: str) -> dict:
    """Read a stored lme4/lmerTest reference JSON file."""
    path = REF_DIR / f"{name}.json"
    if not path.exists():
        pytest.fail(f"reference {path} not generated")
    with path.open() as fh:
        return json.load(fh)


def richardson(f, x, h=1e-3):
    """Central differences of ``f`` at ``x`` with one Richardson step (error O(h^4))."""
    import numpy as np

    out = []
    for e in np.eye(x.size):
        d1 = (f(x + h * e) - f(x - h * e)) / (2 * h)
        d2 = (f(x + h / 2 * e) - f(x - h / 2 * e)) / h
        out.append((4 * d2 - d1) / 3)
    return np.array(out)
