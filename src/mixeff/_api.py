"""The formula entry point: ``lmer(formula, data)``.

The fit is a pipeline of stages, each usable on its own (as lme4's ``lFormula`` ->
``mkLmerDevfun`` -> ``optimizeLmer`` -> ``mkMerMod``):

formula (:mod:`._formula`) -> design (:mod:`._design`) -> blocks (:mod:`._blocks`) ->
objective (:mod:`._objective`) -> optimiser (:mod:`._optimizer`) -> fit (:mod:`._fit`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ._fit import LmerFit

__all__ = ["lmer", "fit_design", "choose_optimizer"]


def choose_optimizer(objective) -> str:
    """Pick the optimiser by the problem.

    The analytic gradient costs a selected inverse of the factor, a few objective
    evaluations' worth when the factor is small and many more when it has large dense
    parts (crossed factors). Gradient-based L-BFGS-B wins with many theta or a cheap
    gradient; derivative-free COBYQA wins for few theta and a big factor.
    """
    ntheta = objective.blocks.re.ntheta
    if ntheta >= 6 or objective.nnz_factor <= 100_000:
        return "L-BFGS-B"
    return "COBYQA"


def lmer(
    formula: str,
    data: pd.DataFrame,
    reml: bool = True,
    weights: str | Sequence[float] | np.ndarray | None = None,
    offset: str | Sequence[float] | np.ndarray | None = None,
    *,
    optimizer: str = "auto",
    check_nlev: str = "stop",
    check_nobs_vs_nre: str = "stop",
    verbose: bool = False,
    blas_threads: int | None = 1,
) -> LmerFit:
    """Fit a linear mixed-effects model, as R's ``lme4::lmer``.

    Parameters
    ----------
    formula
        lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``. Fixed part with
        formulaic's syntax (``*``, ``:``, ``C(x)``, ``np.log(x)``, ``0 +``); random terms
        ``(expr | g)``, ``(expr || g)``, ``(1 | a/b)``, ``(1 | a:b)``.
    data
        The data; rows with a missing value in a used column are dropped. A Dask
        DataFrame, or a path or glob of Parquet files, is fitted partition by partition
        on the active Dask scheduler (``pip install "mixeff[dask]"``).
    reml
        REML (default) or maximum likelihood.
    weights
        Prior weights: a column name or an array with one value per row of ``data``.
    offset
        A known term added to the linear predictor: column name or array.
    optimizer
        ``"auto"`` (chosen by the problem: L-BFGS-B with the analytic gradient, or
        derivative-free COBYQA for few theta and a costly gradient), ``"L-BFGS-B"`` or
        ``"COBYQA"``.
    check_nlev, check_nobs_vs_nre
        ``"stop"`` (default), ``"warning"`` or ``"ignore"``: what to do when a grouping
        factor has as many levels as rows, or a term has as many random effects as there
        are rows (lme4's ``check.nobs.vs.nlev`` and ``check.nobs.vs.nRE``).
    verbose
        Report progress (evaluations, current objective, elapsed time) on stderr for
        fits that run longer than about two seconds.
    blas_threads
        Threads of the BLAS libraries (numpy's, scipy's and CHOLMOD's) during the fit;
        ``None`` leaves them as they are. One thread (the default) is the fastest for
        all but the largest dense factorisations, and threaded BLAS stalls badly on small
        and medium matrices when the machine is busy (measured: a 2000 x 2000 Cholesky
        took 1 s with two threads beside one busy process, 46 ms with one thread).

    Returns
    -------
    LmerFit
    """
    import time

    from ._dask import is_dask_input
    from ._design import build_design

    if is_dask_input(data):   # Dask DataFrame or Parquet path/glob: fit from partitions
        from ._dask import lmer_dask

        return lmer_dask(formula, data, reml, weights, offset, optimizer=optimizer,
                         check_nlev=check_nlev, check_nobs_vs_nre=check_nobs_vs_nre,
                         verbose=verbose, blas_threads=blas_threads)
    t0 = time.perf_counter()
    design = build_design(formula, data, weights=weights, offset=offset,
                          check_nlev=check_nlev, check_nobs_vs_nre=check_nobs_vs_nre)
    t_design = time.perf_counter() - t0
    fit = fit_design(design, reml=reml, optimizer=optimizer, verbose=verbose,
                     blas_threads=blas_threads)
    fit.timings = {"design": t_design, **fit.timings}
    fit.data = data
    return fit


def _blas_limit(threads: int | None):
    """Context manager limiting the BLAS threads (a no-op for ``None``)."""
    import contextlib

    if threads is None:
        return contextlib.nullcontext()
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        from ._cholmod import sparse_cholesky_available

        sparse_cholesky_available()   # load CHOLMOD's BLAS before taking stock of them
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=int(threads), user_api="blas")


_CONTROLLER = None


def fit_design(design, reml: bool = True, optimizer: str = "auto",
               factorization: str = "auto", verbose: bool = False,
               blas_threads: int | None = 1) -> LmerFit:
    """Fit a model from a built :class:`~mixeff._design.Design` (stages 3-6).

    The seconds spent in each stage are kept in ``fit.timings``.
    """
    with _blas_limit(blas_threads):
        return _fit_design(design, reml, optimizer, factorization, verbose)


def _fit_design(design, reml, optimizer, factorization, verbose) -> LmerFit:
    import time

    from ._blocks import build_blocks
    from ._checks import check_convergence
    from ._fit import LmerFit
    from ._lambda import ReStructure, lme4_term_order
    from ._objective import LmmObjective
    from ._optimizer import minimize_theta

    t0 = time.perf_counter()
    terms = design.terms
    order = lme4_term_order([len(t.levels) for t in terms])
    re = ReStructure(
        [terms[i].label for i in order],
        [list(terms[i].colnames) for i in order],
        [len(terms[i].levels) for i in order],
    )
    y = design.y if design.offset is None else design.y - design.offset
    blocks = build_blocks(
        re,
        [terms[i].codes for i in order],
        [terms[i].matrix for i in order],
        design.X,
        y,
        design.weights,
    )
    t1 = time.perf_counter()
    obj = LmmObjective(blocks, reml=reml, factorization=factorization)
    t2 = time.perf_counter()
    method = choose_optimizer(obj) if optimizer == "auto" else optimizer
    optsum = minimize_theta(obj, re.start_theta(), re.lower_bounds(), method=method,
                            verbose=verbose)
    t3 = time.perf_counter()
    optsum.messages.extend(check_convergence(obj, optsum))
    t4 = time.perf_counter()
    fit = LmerFit(design=design, structure=re, blocks=blocks, objective_fn=obj,
                  optsum=optsum, term_order=order)
    fit.timings = {"blocks": t1 - t0, "analysis": t2 - t1, "optimizer": t3 - t2,
                   "checks": t4 - t3, "fit_object": time.perf_counter() - t4}
    return fit
