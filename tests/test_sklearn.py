"""mixeff.sklearn.LmerRegressor: a mixed model in scikit-learn pipelines.

The estimator must give exactly the fit and predictions of mixeff.lmer, and follow
scikit-learn's conventions (clone, get/set_params, cross-validation) where it is
installed; without scikit-learn it still works as a plain object.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixeff
from mixeff import DataError
from mixeff.sklearn import LmerRegressor

FORMULA = "height ~ week * C(temp) + (1 | plant_id)"


@pytest.fixture(scope="module")
def plants() -> pd.DataFrame:
    return mixeff.datasets.load_plant_growth()


def test_fit_predict_equal_lmer(plants):
    X, y = plants.drop(columns="height"), plants["height"]
    est = LmerRegressor(FORMULA).fit(X, y)
    ref = mixeff.lmer(FORMULA, plants)
    assert est.fit_.objective == ref.objective
    np.testing.assert_allclose(est.predict(X), ref.fitted().to_numpy(), rtol=1e-13)
    assert est.n_features_in_ == 3 and list(est.feature_names_in_) == ["plant_id", "temp",
                                                                       "week"]
    new = pd.DataFrame({"plant_id": ["p01", "zz"], "temp": [10, 10], "week": [7, 7]})
    pred = est.predict(new)
    np.testing.assert_allclose(pred, ref.predict(new, allow_new_levels=True), rtol=1e-15)
    pop = LmerRegressor(FORMULA, re_form="~0").fit(X, y).predict(new)
    assert pop[0] == pop[1] == pytest.approx(pred[1])
    r2 = est.score(X, y)
    resid = y - est.predict(X)
    assert r2 == pytest.approx(1 - np.sum(resid**2) / np.sum((y - y.mean())**2))
    assert LmerRegressor(FORMULA).fit(plants).fit_.objective == ref.objective  # y in X


def test_params_and_errors(plants):
    est = LmerRegressor(FORMULA, reml=False)
    assert est.get_params() == {"allow_new_levels": True, "formula": FORMULA,
                                "optimizer": "auto", "re_form": None, "reml": False}
    assert est.set_params(reml=True) is est and est.reml
    with pytest.raises(ValueError, match="(?i)invalid parameter"):
        est.set_params(colour="red")
    with pytest.raises(DataError, match="not fitted"):
        LmerRegressor(FORMULA).predict(plants)
    with pytest.raises(DataError, match="must be a column name"):
        LmerRegressor("np.log(height) ~ week + (1 | plant_id)").fit(plants, plants["height"])
    with pytest.raises(DataError, match="X must be a pandas DataFrame"):
        LmerRegressor(FORMULA).fit(plants.to_numpy(), plants["height"])
    with pytest.raises(DataError, match="y has 3 values"):
        LmerRegressor(FORMULA).fit(plants, [1.0, 2.0, 3.0])


def test_scikit_learn_cross_validation(plants):
    sk = pytest.importorskip("sklearn")
    from sklearn.base import clone, is_regressor
    from sklearn.model_selection import GroupKFold, cross_val_score

    est = LmerRegressor(FORMULA)
    assert is_regressor(est)
    twin = clone(est)
    assert twin is not est and twin.get_params() == est.get_params()
    X, y = plants.drop(columns="height"), plants["height"]
    scores = cross_val_score(est, X, y, cv=GroupKFold(n_splits=3), groups=plants["plant_id"])
    assert scores.shape == (3,) and np.all(scores > 0.8)
    # by hand: the first fold
    train, test = next(GroupKFold(n_splits=3).split(X, y, plants["plant_id"]))
    fold = LmerRegressor(FORMULA).fit(X.iloc[train], y.iloc[train])
    assert scores[0] == pytest.approx(fold.score(X.iloc[test], y.iloc[test]), rel=1e-12)
    assert sk.__version__
