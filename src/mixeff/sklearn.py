"""A scikit-learn style estimator of a linear mixed model, for pipelines and cross-validation.

``LmerRegressor("y ~ x + (1 | g)").fit(X, y)`` fits :func:`mixeff.lmer` to the DataFrame
``X`` (every column the formula names but the response) with ``y`` as the response;
``predict(X)`` gives the model's predictions for new rows (by default with the random
effects of the groups seen in the fit, and the population-level prediction for groups
not seen, as lme4's ``predict(..., allow.new.levels = TRUE)``), ``score`` the R^2 of
those predictions. ``get_params`` / ``set_params`` follow scikit-learn's conventions, so
``sklearn.base.clone``, ``GridSearchCV`` and ``cross_val_score`` work.

scikit-learn is not needed to use the class; when it is installed the class is a
``BaseEstimator`` and ``RegressorMixin``. The inputs must be data frames (pandas, or
polars / pyarrow tables): a formula names columns.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import numpy as np
import pandas as pd

from ._errors import DataError

__all__ = ["LmerRegressor"]

try:  # pragma: no cover - depends on the environment
    from sklearn.base import BaseEstimator as _Base
    from sklearn.base import RegressorMixin as _Mixin

    _BASES: tuple[type, ...] = (_Mixin, _Base)
except ImportError:  # pragma: no cover - depends on the environment
    _BASES = ()


class _Params:
    """``get_params`` / ``set_params`` from the ``__init__`` signature (scikit-learn's rule,
    for use without scikit-learn; with it, ``BaseEstimator``'s come first)."""

    @classmethod
    def _get_param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values()
                      if p.name != "self" and p.kind != p.VAR_KEYWORD)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The estimator's parameters (the arguments of ``__init__``)."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params: Any):
        """Set parameters; unknown names are an error."""
        valid = set(self._get_param_names())
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}; "
                                 f"valid: {sorted(valid)}")
            setattr(self, name, value)
        return self


class LmerRegressor(*_BASES, _Params):
    """A linear mixed model as a scikit-learn regressor.

    Parameters
    ----------
    formula
        An lme4 formula, ``"height ~ week * C(temp) + (1 | plant_id)"``; its response
        must be a column name (the values come from ``y``).
    reml
        REML (default) or maximum likelihood.
    re_form
        Random terms used by :meth:`predict`: None (all), ``"~0"`` (none: population
        level) or a formula of some of them (see :meth:`mixeff.LmerFit.predict`).
    allow_new_levels
        Predict rows of groups not seen in the fit at the population level (default
        True: cross-validation folds hold new groups).
    optimizer
        Passed to :func:`mixeff.lmer`.

    Attributes
    ----------
    fit_ : LmerFit
        The fitted model (after :meth:`fit`).
    n_features_in_ : int
        Number of columns of ``X`` seen by :meth:`fit`.
    feature_names_in_ : numpy.ndarray
        Their names.
    """

    def __init__(self, formula: str = "", reml: bool = True, re_form: str | None = None,
                 allow_new_levels: bool = True, optimizer: str = "auto"):
        self.formula = formula
        self.reml = reml
        self.re_form = re_form
        self.allow_new_levels = allow_new_levels
        self.optimizer = optimizer

    def _response(self) -> str:
        from ._formula import parse_formula

        if not isinstance(self.formula, str) or not self.formula:
            raise DataError("LmerRegressor needs a formula, e.g. "
                            "LmerRegressor('y ~ x + (1 | g)')")
        resp = parse_formula(self.formula).response.strip()
        if len(resp) > 2 and resp[0] == resp[-1] == "`":
            name = resp[1:-1]
        elif re.fullmatch(r"[A-Za-z_.][\w.]*", resp):
            name = resp
        else:
            raise DataError(f"the response of {self.formula!r} must be a column name (y is "
                            "given to fit); transform y before fitting instead")
        return name

    @staticmethod
    def _frame(X: Any) -> pd.DataFrame:
        from ._frames import as_pandas

        return as_pandas(X, "X")

    def fit(self, X: Any, y: Any = None):
        """Fit the model to ``X`` (a data frame) and the response ``y``.

        Without ``y`` the response is taken from ``X``'s column of that name.
        """
        from ._api import lmer

        frame = self._frame(X)
        resp = self._response()
        if y is not None:
            yv = np.asarray(y, dtype=float).ravel()
            if yv.shape[0] != len(frame):
                raise DataError(f"y has {yv.shape[0]} values; X has {len(frame)} rows")
            frame = frame.assign(**{resp: yv})
        elif resp not in frame.columns:
            raise DataError(f"no y given and X has no column {resp!r} (the response)")
        self.feature_names_in_ = np.asarray([c for c in frame.columns if c != resp],
                                            dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        self.fit_ = lmer(self.formula, frame, reml=self.reml, optimizer=self.optimizer)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "fit_"):
            raise DataError("this LmerRegressor is not fitted yet: call fit(X, y) first")

    def predict(self, X: Any) -> np.ndarray:
        """Predictions for the rows of ``X`` (NaN where a used value is missing)."""
        self._check_fitted()
        frame = self._frame(X)
        pred = self.fit_.predict(frame, re_form=self.re_form,
                                 allow_new_levels=self.allow_new_levels)
        return pred.to_numpy(dtype=float)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """R^2 of the predictions (scikit-learn's ``r2_score``)."""
        yv = np.asarray(y, dtype=float).ravel()
        p = self.predict(X)
        w = np.ones_like(yv) if sample_weight is None else np.asarray(sample_weight, float)
        ybar = np.sum(w * yv) / np.sum(w)
        ss_res = float(np.sum(w * (yv - p) ** 2))
        ss_tot = float(np.sum(w * (yv - ybar) ** 2))
        return 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")

    if _BASES:  # pragma: no branch - scikit-learn >= 1.6 reads the tags
        def __sklearn_tags__(self):
            tags = super().__sklearn_tags__()
            tags.input_tags.string = True
            tags.input_tags.categorical = True
            return tags
