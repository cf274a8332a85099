"""pytest set-up for the benchmark suites in ``benchmarks/``.

The suites only run when asked for: ``pytest benchmarks --benchmark-only`` (as the nox
session ``bench`` does) or ``pytest benchmarks -m bench``. Any other run that reaches
this folder skips them, and the repository's normal ``pytest`` (``testpaths = tests``)
never collects them at all.

Like ``run_side_by_side.py``, the suites run with one BLAS thread
(``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` set to 1 unless they
are already set): on a small shared machine the idle threads of OpenBLAS's pools otherwise
make the timings of small problems swing by an order of magnitude.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import pytest  # noqa: E402

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "bench: performance benchmark (run with pytest benchmarks --benchmark-only)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        only = bool(config.getoption("benchmark_only"))
    except ValueError:  # pytest-benchmark not installed
        only = False
    asked = "bench" in (config.getoption("markexpr", default="") or "")
    if only or asked:
        return
    skip = pytest.mark.skip(reason="benchmark: run with pytest benchmarks --benchmark-only")
    for item in items:
        if "bench" in item.keywords:
            item.add_marker(skip)
