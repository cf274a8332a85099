"""pytest-benchmark suites of mixeff's core: one kernel per group, then whole fits.

Run from the repository root::

    .venv/bin/pytest benchmarks --benchmark-only
    MIXEFF_BENCH_SCALE=full .venv/bin/pytest benchmarks --benchmark-only   # side-by-side sizes

Groups (compare within a group, ``--benchmark-group-by=group`` is the default):

* ``objective``  one evaluation ``fit._obj(theta)`` at the fitted theta (fill, CHOLMOD
  refactorisation, solves, dense algebra);
* ``gradient``   one analytic gradient ``fit._obj.gradient(theta)`` with the solution at
  theta already computed (selected inverse + traces);
* ``blocks``     ``mixeff._blocks.build_blocks`` (the one pass over the rows);
* ``design``     ``mixeff._design.build_design`` (formula, model frame, X, grouping codes);
* ``fit``        a whole ``mixeff.lmer`` call (warm: the model was fitted once before).

The simulated designs (``benchmarks/simulate.py``) run at reduced sizes unless
``MIXEFF_BENCH_SCALE=full``; the side-by-side runner (``run_side_by_side.py``) uses the
full sizes and compares with lme4.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import simulate

pytestmark = pytest.mark.bench

DATA_DIR = Path(os.environ.get("MIXEFF_BENCH_DATA", "/work/shared/data"))
SCALE = os.environ.get("MIXEFF_BENCH_SCALE", "small")
SEED = 20261125

REAL = {
    "sleepstudy": ("sleepstudy.csv", "Reaction ~ Days + (Days | Subject)", ["Subject"]),
    "penicillin": ("Penicillin.csv", "diameter ~ 1 + (1 | plate) + (1 | sample)",
                   ["plate", "sample"]),
    "insteval": ("InstEval.csv", "y ~ service + (1 | s) + (1 | d) + (1 | dept:service)",
                 ["s", "d", "studage", "lectage", "service", "dept"]),
}
SIM_SIZES = {
    "small": {
        "random_slopes": {"n": 100_000, "n_groups": 5_000},
        "crossed": {"n": 100_000, "n_a": 6_666, "n_b": 666},
        "movielens_like": {"n": 200_000, "n_users": 1_200, "n_items": 800},
        "deep_nesting": {"n": 500_000},
    },
    "full": {name: {} for name in simulate.CASES},
}
if SCALE not in SIM_SIZES:
    raise ValueError(f"MIXEFF_BENCH_SCALE must be one of {sorted(SIM_SIZES)}, got {SCALE!r}")
CASES = list(REAL) + list(SIM_SIZES[SCALE])


def _load(name: str) -> tuple[pd.DataFrame, str]:
    if name in REAL:
        file, formula, factors = REAL[name]
        df = pd.read_csv(DATA_DIR / file)
        for col in factors:
            df[col] = df[col].astype(str)
        return df, formula
    df = simulate.CASES[name](seed=SEED, **SIM_SIZES[SCALE][name])
    return df, simulate.FORMULAS[name][0]


_CACHE: dict[str, tuple] = {}


def _model(name: str):
    """(data, formula, fit) of a case; loaded and fitted once per session."""
    if name not in _CACHE:
        import mixeff

        df, formula = _load(name)
        _CACHE[name] = (df, formula, mixeff.lmer(formula, df))
    return _CACHE[name]


@pytest.fixture(params=CASES)
def model(request):
    return _model(request.param)


def _blocks_args(fit):
    """The arguments ``fit_design`` hands to ``build_blocks`` (storage order of terms)."""
    d = fit.design
    order = fit.term_order
    y = d.y if d.offset is None else d.y - d.offset
    return (fit.structure, [d.terms[i].codes for i in order],
            [d.terms[i].matrix for i in order], d.X, y, d.weights)


@pytest.mark.benchmark(group="objective")
def test_objective(benchmark, model):
    _, _, fit = model
    obj, theta = fit._obj, np.array(fit.theta)
    value = benchmark(obj, theta)
    assert np.isclose(value, fit.objective, rtol=1e-10, atol=1e-8)


@pytest.mark.benchmark(group="gradient")
def test_gradient(benchmark, model):
    _, _, fit = model
    obj, theta = fit._obj, np.array(fit.theta)
    obj.solve(theta)
    g = benchmark(obj.gradient, theta)
    assert g.shape == theta.shape and np.all(np.isfinite(g))


@pytest.mark.benchmark(group="blocks")
def test_build_blocks(benchmark, model):
    from mixeff._blocks import build_blocks

    _, _, fit = model
    args = _blocks_args(fit)
    blocks = benchmark(build_blocks, *args)
    assert blocks.q == fit.blocks.q and np.isclose(blocks.yty, fit.blocks.yty)


@pytest.mark.benchmark(group="design")
def test_build_design(benchmark, model):
    from mixeff._design import build_design

    df, formula, fit = model
    design = benchmark(build_design, formula, df)
    assert design.n == fit.nobs


@pytest.mark.benchmark(group="fit")
def test_fit(benchmark, model):
    import mixeff

    df, formula, fit = model
    rounds = 3 if fit.nobs < 200_000 or SCALE == "small" else 1
    new = benchmark.pedantic(mixeff.lmer, args=(formula, df), rounds=rounds, iterations=1,
                             warmup_rounds=0)
    benchmark.extra_info.update(n_evaluations=new.n_evaluations, objective=new.objective,
                                optimizer=new.optsum.method, rows=new.nobs)
    assert np.isclose(new.objective, fit.objective, rtol=1e-8)
