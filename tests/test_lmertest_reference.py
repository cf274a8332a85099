"""Satterthwaite t tests compared with stored lmerTest 3.1-3 references.

Tolerances of the inference issue: Satterthwaite df within 1e-3 relative, t values within
1e-4 relative.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_lme4_reference import MODELS, fitted, r_name


@pytest.mark.parametrize("name", list(MODELS))
def test_satterthwaite_coef_table(name):
    fit, ref = fitted(name)
    ours = fit.coef_table()
    ours.index = [r_name(i) for i in ours.index]
    theirs = pd.DataFrame(ref["coef_table"]).set_index("term")
    ours = ours.loc[theirs.index]
    np.testing.assert_allclose(ours["df"], theirs["df"], rtol=1e-3)
    np.testing.assert_allclose(ours["t value"], theirs["t value"], rtol=1e-4)
    np.testing.assert_allclose(ours["Estimate"], theirs["Estimate"],
                               atol=1e-4 * theirs["Std. Error"].min())
    np.testing.assert_allclose(ours["Std. Error"], theirs["Std. Error"], rtol=1e-4)


def test_contest_single_row_equals_coef_table():
    fit, _ = fitted("sleepstudy_reml")
    ct = fit.coef_table()
    one = fit.contest([0.0, 1.0], joint=False)
    assert one["df"].iloc[0] == pytest.approx(ct["df"].iloc[1], rel=1e-12)
    F = fit.contest([[0.0, 1.0]])
    assert F["F value"].iloc[0] == pytest.approx(ct["t value"].iloc[1] ** 2, rel=1e-10)
    assert F["DenDF"].iloc[0] == pytest.approx(ct["df"].iloc[1], rel=1e-10)


@pytest.mark.parametrize("name", ["sleepstudy_reml", "penicillin_reml", "plant_slopes_reml",
                                  "dyestuff2_reml"])
def test_stencil_and_richardson_satterthwaite_agree(name):
    """The default one-stencil derivatives equal lmerTest's Richardson scheme closely."""
    from mixeff._satterthwaite import contest_1d, satterthwaite_info

    fit, _ = fitted(name)
    a = satterthwaite_info(fit, method="stencil")
    b = satterthwaite_info(fit, method="richardson")
    beta = fit._sol.beta
    for e in np.eye(beta.size):
        assert contest_1d(a, beta, e)["df"] == pytest.approx(contest_1d(b, beta, e)["df"],
                                                             rel=2e-4)
