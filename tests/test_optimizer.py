"""Start values and the optimiser's record."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from refdata import load_csv

import mixeff
from mixeff._optimizer import minimize_theta, moment_start, scaled_start


def _crossed(seed: int = 3, n: int = 6000, na: int = 300, nb: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, na, n)
    b = rng.integers(0, nb, n)
    x = rng.normal(size=n)
    y = 1.0 + 0.5 * x + 0.8 * rng.normal(size=na)[a] + 0.6 * rng.normal(size=nb)[b] \
        + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "a": a.astype(str), "b": b.astype(str)})


def test_moment_start_is_near_the_optimum_for_crossed_intercepts():
    m = mixeff.lmer("y ~ x + (1 | a) + (1 | b)", _crossed())
    theta0, moved = moment_start(m.blocks)
    assert moved.all()
    np.testing.assert_allclose(theta0, m.theta, rtol=0.2)
    start = scaled_start(m.blocks, method="COBYQA")
    assert start["scale"] is None
    assert 0.02 <= start["initial_radius"] <= 0.1 * theta0.max() + 1e-12


def test_vector_terms_keep_lme4s_start():
    m = mixeff.lmer("Reaction ~ Days + (Days | Subject)", load_csv("sleepstudy.csv"))
    theta0, moved = moment_start(m.blocks)
    assert not moved.any()
    np.testing.assert_array_equal(theta0, m.structure.start_theta())
    assert scaled_start(m.blocks, method="COBYQA")["initial_radius"] == 1.0
    # L-BFGS-B starts at lme4's start
    np.testing.assert_array_equal(scaled_start(m.blocks, method="L-BFGS-B")["theta0"],
                                  m.structure.start_theta())


@pytest.mark.parametrize("method", ["L-BFGS-B", "COBYQA"])
@pytest.mark.parametrize("name,formula", [
    ("Penicillin.csv", "diameter ~ 1 + (1 | plate) + (1 | sample)"),
    ("Pastes.csv", "strength ~ 1 + (1 | batch/cask)"),
    ("Dyestuff2.csv", "Yield ~ 1 + (1 | Batch)"),     # optimum on the boundary
])
def test_data_start_reaches_the_optimum_from_lme4s_start(name, formula, method):
    m = mixeff.lmer(formula, load_csv(name), optimizer=method)
    obj, re = m._obj, m.structure
    from_lme4 = minimize_theta(obj, re.start_theta(), re.lower_bounds(), method=method)
    assert m.optsum.fmin <= from_lme4.fmin + 1e-8
    np.testing.assert_allclose(m.theta, from_lme4.theta, atol=2e-4)



def test_gradient_fits_end_at_the_optimum_not_where_the_objective_goes_flat():
    """L-BFGS-B stops when the objective no longer decreases measurably (here with
    max|gradient| ~4e-6); the Newton step after it, on the gradient and the Hessian the
    checks compute, brings the gradient down to rounding."""
    rng = np.random.default_rng(5)
    n, m = 20000, 1000
    g = rng.integers(0, m, n)
    x = rng.normal(size=n)
    y = 1 + 0.5 * x + 0.8 * rng.normal(size=m)[g] + 0.4 * rng.normal(size=m)[g] * x \
        + rng.normal(size=n)
    fit = mixeff.lmer("y ~ x + (1 + x | g)", pd.DataFrame({"y": y, "x": x, "g": g}))
    assert fit.optsum.method == "L-BFGS-B"
    assert np.max(np.abs(fit._obj.gradient(fit.theta))) < 1e-8
    assert fit.converged
