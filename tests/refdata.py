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
