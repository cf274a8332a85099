"""mixeff: linear mixed-effects models with lme4/lmerTest answers, fast.

The public surface is small: :func:`lmer` fits a model from a formula and a DataFrame,
:class:`LmerFit` is what it returns. Heavy modules (Numba kernels, CHOLMOD, plotting) are
imported on first use so that ``import mixeff`` stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._errors import ConvergenceWarning, DataError, FormulaError, MixeffError

__version__ = "0.1.0"

_LAZY = {
    "lmer": "._api",
    "lm": "._lm",
    "LmFit": "._lm",
    "anova": "._compare",
    "aic_table": "._compare",
    "LmerFit": "._fit",
    "datasets": ".datasets",
    "plots": ".plots",
    "sklearn": ".sklearn",
    "fit_arrays": "._embed",
    "RandomTermSpec": "._embed",
    "set_options": "._coding",
    "get_options": "._coding",
    "SingularFitWarning": "._warnings",
}

__all__ = [
    "ConvergenceWarning",
    "DataError",
    "FormulaError",
    "LmFit",
    "LmerFit",
    "MixeffError",
    "RandomTermSpec",
    "SingularFitWarning",
    "aic_table",
    "anova",
    "datasets",
    "fit_arrays",
    "get_options",
    "lm",
    "lmer",
    "plots",
    "set_options",
]

if TYPE_CHECKING:  # pragma: no cover
    from . import datasets, plots
    from ._api import lmer
    from ._coding import get_options, set_options
    from ._compare import aic_table, anova
    from ._embed import RandomTermSpec, fit_arrays
    from ._fit import LmerFit
    from ._lm import LmFit, lm
    from ._warnings import SingularFitWarning


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'mixeff' has no attribute {name!r}")
    module = import_module(mod, __name__)
    value = module if mod == f".{name}" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
