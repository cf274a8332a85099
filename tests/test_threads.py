"""Fits run from several threads at once give exactly the serial results.

Every fit owns its blocks, its objective (the values array of ``M``, the factor, the
solution) and its optimiser record: nothing may be shared between fits. Four threads run
several models each (random slopes, uncorrelated terms, nested and crossed factors, ML and
REML, both factorisations, both optimisers) and must reproduce the serial fits bit for bit.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from refdata import load_csv

import mixeff
from mixeff._api import fit_design
from mixeff._design import build_design


def _crossed_data() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    n = 4000
    d = pd.DataFrame({"x": rng.normal(size=n), "a": rng.integers(0, 250, n),
                      "b": rng.integers(0, 150, n)})
    d["y"] = (1 + 0.3 * d["x"] + rng.normal(size=250)[d["a"]] * 0.7
              + rng.normal(size=150)[d["b"]] * 0.5 + rng.normal(size=250)[d["a"]] * 0.2 * d["x"]
              + rng.normal(size=n))
    return d


def _models() -> list[tuple[str, pd.DataFrame, dict]]:
    sleep = load_csv("sleepstudy.csv", ["Subject"])
    pen = load_csv("Penicillin.csv")
    pastes = load_csv("Pastes.csv")
    crossed = _crossed_data()
    return [
        ("Reaction ~ Days + (Days | Subject)", sleep, {}),
        ("Reaction ~ Days + (Days || Subject)", sleep, {"reml": False}),
        ("Reaction ~ Days + (Days | Subject)", sleep, {"optimizer": "COBYQA"}),
        ("diameter ~ 1 + (1 | plate) + (1 | sample)", pen, {}),
        ("strength ~ 1 + (1 | batch/cask)", pastes, {"reml": False}),
        ("y ~ x + (x | a) + (1 | b)", crossed, {}),
        ("y ~ x + (1 | a) + (1 | b)", crossed, {"weights": np.linspace(0.5, 2, len(crossed))}),
    ]


def _numbers(m) -> dict:
    return {"theta": m.theta, "beta": m.fixef.to_numpy(), "sigma": m.sigma,
            "objective": m.objective, "vcov": m.vcov().to_numpy(),
            "ranef": np.concatenate([r.to_numpy().ravel()
                                     for r in m.ranef(condvar=False).values()]),
            "evaluations": m.n_evaluations}


def _assert_same(a: dict, b: dict, rtol: float = 0.0) -> None:
    for k in a:
        if rtol:  # relative to the largest entry (a tiny conditional mode cancels)
            scale = float(np.max(np.abs(b[k]))) if np.size(b[k]) else 0.0
            np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=rtol * scale, err_msg=k)
        else:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _lmer(formula, data, kwargs):
    # (no warnings.catch_warnings here: it swaps process-wide state, unsafe in threads)
    return mixeff.lmer(formula, data, **kwargs)


def _concurrent(models, jobs):
    fits = []

    def run(i):
        m = _lmer(*models[i])
        fits.append(m)
        return i, _numbers(m), threading.get_ident()

    with ThreadPoolExecutor(max_workers=4) as ex:
        results = list(ex.map(run, jobs))
    assert len({t for _, _, t in results}) > 1  # really ran on several threads
    return results, fits


def test_concurrent_lmer_matches_serial():
    """4 threads x 7 models x 4: the serial numbers to 1e-12 (not bit for bit: the
    variances and conditional modes are computed after the fits, with the caller's BLAS
    threads), with no factor, workspace or record shared between fits."""
    models = _models()
    serial = [_numbers(_lmer(*m)) for m in models]
    results, fits = _concurrent(models, list(range(len(models))) * 4)
    for i, numbers, _ in results:
        _assert_same(numbers, serial[i], rtol=1e-12)
    for attr in ("_chol", "_mdata", "_ZtXY"):
        objs = [getattr(m._obj, attr) for m in fits]
        assert len({id(o) for o in objs}) == len(fits), attr
    assert len({id(m.optsum) for m in fits}) == len(fits)
    assert len({id(m.blocks) for m in fits}) == len(fits)


def test_concurrent_lmer_bitwise_with_one_blas_thread():
    """With BLAS held at one thread for the whole process, concurrent = serial, bit for bit."""
    from threadpoolctl import threadpool_limits

    models = _models()
    _lmer(*models[0])  # load every BLAS (CHOLMOD's included) before limiting them
    with threadpool_limits(limits=1, user_api="blas"):
        serial = [_numbers(_lmer(*m)) for m in models]
        results, _ = _concurrent(models, list(range(len(models))) * 4)
    for i, numbers, _ in results:
        _assert_same(numbers, serial[i])


@pytest.mark.parametrize("factorization", ["cholmod", "schur"])
def test_concurrent_fits_share_designs_but_not_factors(factorization):
    """Several threads fit the very same Design objects with one factorisation."""
    designs = [build_design(f, d, **{k: v for k, v in kw.items() if k == "weights"})
               for f, d, kw in _models()]

    def fit(i):
        return fit_design(designs[i % len(designs)], factorization=factorization)

    serial = [_numbers(fit(i)) for i in range(len(designs))]
    with ThreadPoolExecutor(max_workers=4) as ex:
        fits = list(ex.map(fit, range(4 * len(designs))))
    for i, m in enumerate(fits):
        assert m._obj.factorization == factorization
        _assert_same(_numbers(m), serial[i % len(designs)])
    # the shared designs were not written to
    again = [build_design(f, d, **{k: v for k, v in kw.items() if k == "weights"})
             for f, d, kw in _models()]
    for a, b in zip(designs, again, strict=True):
        np.testing.assert_array_equal(a.y, b.y)
        np.testing.assert_array_equal(a.X, b.X)
        for ta, tb in zip(a.terms, b.terms, strict=True):
            np.testing.assert_array_equal(ta.codes, tb.codes)
            np.testing.assert_array_equal(ta.matrix, tb.matrix)


def test_objectives_evaluated_interleaved():
    """Two objectives on the same blocks, evaluated alternately from two threads."""
    from mixeff._objective import LmmObjective

    m = _lmer(*_models()[5])
    rng = np.random.default_rng(0)
    thetas = [m.theta * rng.uniform(0.5, 1.5, m.theta.size) for _ in range(40)]
    ref = [LmmObjective(m.blocks, True)(t) for t in thetas]
    objs = [LmmObjective(m.blocks, True) for _ in range(2)]
    barrier = threading.Barrier(2)

    def run(k):
        barrier.wait()
        return [objs[k](t) for t in thetas]

    with ThreadPoolExecutor(max_workers=2) as ex:
        out = list(ex.map(run, [0, 1]))
    assert out[0] == ref and out[1] == ref


def _blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def test_concurrent_fits_leave_blas_alone():
    """The per-fit BLAS limit is shared by concurrent fits (``_api._SharedBlasLimit``):
    every fit runs with one BLAS thread, so concurrent = serial bit for bit, and the
    caller's own limit (2, set by the main thread, which threadpoolctl then treats as the
    only thread allowed to change OpenBLAS) is back when the last fit ends."""
    from threadpoolctl import threadpool_limits

    models = _models()
    _lmer(*models[0])
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        assert before and max(before) == 2
        serial = [_numbers(_lmer(*m)) for m in models]
        results, _ = _concurrent(models, list(range(len(models))) * 6)
        after = _blas_threads()
    assert after == before
    for i, numbers, _ in results:
        _assert_same(numbers, serial[i])
