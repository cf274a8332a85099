"""The formula entry point: ``lmer(formula, data)``.

The fit is a pipeline of stages, each usable on its own (as lme4's ``lFormula`` ->
``mkLmerDevfun`` -> ``optimizeLmer`` -> ``mkMerMod``):

formula (:mod:`._formula`) -> design (:mod:`._design`) -> blocks (:mod:`._blocks`) ->
objective (:mod:`._objective`) -> optimiser (:mod:`._optimizer`) -> fit (:mod:`._fit`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ._errors import DataError, FormulaError, MixeffError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ._fit import LmerFit

__all__ = ["lmer", "fit_design", "choose_optimizer"]

#: The values of ``optimizer=``.
OPTIMIZERS = ("auto", "L-BFGS-B", "COBYQA")
#: The values of ``factorization=``.
FACTORIZATIONS = ("auto", "cholmod", "schur")


def _check_choice(name: str, value, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices`` (ignoring case, as scipy does), else a DataError."""
    if isinstance(value, str):
        for c in choices:
            if value.lower() == c.lower():
                return c
    raise DataError(f"{name} must be one of {', '.join(map(repr, choices))}, not {value!r}")


def _check_bool(name: str, value) -> bool:
    """``value`` if it is True or False (numpy's bools included), else a DataError.

    A string such as ``"no"`` is truthy: taken as a bool it would fit the opposite model.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise DataError(f"{name} must be True or False, not {value!r}")


def _no_random_terms(formula: str) -> FormulaError:
    """lme4's error for an ``lmer`` formula without a random-effects term."""
    err = FormulaError(f"No random effects terms specified in formula {formula!r} (a model "
                       "without random effects is fitted by mixeff.lm)")
    err.formula = formula
    return err


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
    data_name: str | None = None,
    allow_python: bool = False,
    eval_env: dict | None = None,
    contrasts: dict[str, Any] | None = None,
    subset: Any = None,
    na_action: str = "omit",
    names: str | None = None,
    memory_limit: int | str | None = None,
) -> LmerFit:
    """Fit a linear mixed-effects model, as R's ``lme4::lmer``.

    Parameters
    ----------
    formula
        lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``. Fixed part with
        formulaic's syntax (``*``, ``:``, ``C(x)``, ``np.log(x)``, ``0 +``); random terms
        ``(expr | g)``, ``(expr || g)``, ``(1 | a/b)``, ``(1 | a:b)``.
    data
        The data; rows with a missing value in a used column are dropped. A polars
        or pyarrow table (any data frame with the dataframe interchange protocol or the
        Arrow C stream interface) is converted to pandas first. A Dask
        DataFrame, or a path or glob of Parquet files, is fitted partition by partition
        on the active Dask scheduler (``pip install "mixeff[dask]"``).
    reml
        REML (True, default) or maximum likelihood (False); other values (e.g. the
        string ``"no"``) raise a :class:`~mixeff.DataError`.
    weights
        Prior weights: a column name or an array with one value per row of ``data``.
    offset
        A known term added to the linear predictor: column name or array.
    optimizer
        ``"auto"`` (chosen by the problem: L-BFGS-B with the analytic gradient, or
        derivative-free COBYQA for few theta and a costly gradient), ``"L-BFGS-B"`` or
        ``"COBYQA"`` (case ignored); other names raise a :class:`~mixeff.DataError`.
    check_nlev, check_nobs_vs_nre
        ``"stop"`` (default), ``"warning"`` or ``"ignore"``: what to do when a grouping
        factor has as many levels as rows, or a term has as many random effects as there
        are rows (lme4's ``check.nobs.vs.nlev`` and ``check.nobs.vs.nRE``).
    verbose
        Report progress (evaluations, current objective, elapsed time) on stderr for
        fits that run longer than about two seconds.
    blas_threads
        Threads of the BLAS libraries (numpy's, scipy's and CHOLMOD's) during the fit,
        and of the Schur path's elimination of the first term (large crossed designs);
        ``None`` leaves the BLAS counts as they are and uses every core for the
        elimination. One thread (the default) is the fastest for
        all but the largest dense factorisations, and threaded BLAS stalls badly on small
        and medium matrices when the machine is busy (measured: a 2000 x 2000 Cholesky
        took 1 s with two threads beside one busy process, 46 ms with one thread).
        The limit is process-wide (BLAS libraries have no per-thread setting): while
        any fit runs, the whole process uses the thread count of the first of the
        concurrently running fits, and the original counts come back when the last one
        ends (see :func:`fit_design`).
    data_name
        Name of the data shown by the summary (lme4's ``Data: sleepstudy`` line, the
        name R takes from the call) and in ``mixeff.anova``'s heading; kept as
        ``fit.data_name``. None (default): no such line.
    allow_python
        Evaluate the expressions of the formula (``I(...)``, ``{...}``, the response,
        ``offset()``) as Python code, with Python's builtins and formulaic's transforms.
        Off by default: the formula may come from a user, so its expressions are checked
        against an allow-list (column names, numbers, arithmetic, comparisons, R's logic,
        ``I``, ``C``/``factor``, ``log``, ``exp``, ``sqrt``, ``abs``, ``poly``, ``scale``,
        ``center``, ``bs``, ``cr``, ``offset``, ``np.<elementwise maths>``) before
        anything is evaluated, and anything else is a :class:`~mixeff.FormulaError`.
    eval_env
        Names (your own functions or constants) the formula's expressions may use;
        implies ``allow_python=True``.
    contrasts
        Codings of categorical columns of the fixed part, as R's ``contrasts = list(...)``:
        ``{"recipe": "contr.sum"}`` with ``"contr.treatment"``, ``"contr.sum"``,
        ``"contr.helmert"``, ``"contr.poly"`` or ``"contr.SAS"``; they are evaluated as
        formulaic's ``C(recipe, contr.sum)`` (formulaic's coefficient names say so,
        ``C(recipe, contr.sum)[S.A]``; ``names="R"`` gives R's ``recipe1``). Columns not
        named get the package option
        (:func:`mixeff.set_options`; R's default: treatment contrasts, and polynomial
        contrasts for an ordered pandas Categorical).
    subset
        Rows to use, as R's ``subset=``: a boolean array (by position) or Series (by
        index), or an expression of columns such as ``"Days >= 2 & Subject != '308'"``
        (comparisons, ``in`` / ``%in%``, ``and`` / ``or`` / ``not`` and R's ``& | !``;
        never run as Python code).
    na_action
        ``"omit"`` (default) drops rows with missing values; ``"exclude"`` drops them
        too but pads ``fitted()`` and ``residuals()`` with NaN to the rows of the data,
        as R's ``na.exclude``; ``"fail"`` makes missing values an error.
    names
        ``"formulaic"`` (default, or the package option) or ``"R"``: name the
        coefficients in ``fixef``, ``vcov()``, ``coef_table()`` and ``anova()`` as R
        does (``temp15``, ``recipe1``, ``temperature.L``, ``week:temp15``,
        ``poly(Days, 2)1``; terms ``temp``, ``week:temp``).
    memory_limit
        Bytes the factorisation may use (a number, or a text such as ``"8GB"``); None
        (default): the memory available to the process (``MemAvailable``, the cgroup's
        limit, ``RLIMIT_AS``/``RLIMIT_DATA``). The memory each factorisation path needs is
        estimated before it is allocated (the dense Schur complement from its size,
        CHOLMOD's factor from its symbolic analysis); a path that does not fit is not
        taken, and when none fits a :class:`~mixeff.DataError` says how much is needed.

    Returns
    -------
    LmerFit

    Raises
    ------
    FormulaError
        A formula that cannot be parsed or names unknown columns, or that has no
        random-effects term (lme4's "No random effects terms specified in formula").
    DataError
        Data that cannot be used (see :func:`~mixeff._design.build_design`), a bad
        ``optimizer=``, or a fit that breaks down numerically.

    Warns
    -----
    ConvergenceWarning
        One per failed convergence check (the messages of ``fit.optsum``, also in
        ``fit.messages``), as lme4 warns (``Model failed to converge with max|grad| =
        ...``), attributed to the line of the user's call.
    SingularFitWarning
        A fit on the boundary of the parameter space, with lme4's message "boundary
        (singular) fit: see help('isSingular')" (also in ``fit.messages``,
        ``fit.is_singular`` and the summary). Filter it with
        ``warnings.simplefilter("ignore", mixeff.SingularFitWarning)``.
    """
    import time

    from ._dask import is_dask_input
    from ._design import build_design
    from ._formula import parse_formula

    optimizer = _check_choice("optimizer", optimizer, OPTIMIZERS)
    reml = _check_bool("reml", reml)
    pf = parse_formula(formula) if isinstance(formula, str) else formula
    if not getattr(pf, "random", True):
        raise _no_random_terms(pf.text)
    from ._coding import resolve_names

    names = resolve_names(names)
    if is_dask_input(data):   # Dask DataFrame or Parquet path/glob: fit from partitions
        from ._dask import lmer_dask

        if contrasts or subset is not None or str(na_action).lower() not in ("omit",
                                                                             "na.omit"):
            from ._errors import DataError

            raise DataError("contrasts=, subset= and na_action= are not available for "
                            "Dask data (select and code the columns in Dask first)")
        import pandas as pd

        dtypes = getattr(data, "dtypes", None)
        ordered = [] if dtypes is None else [
            str(c) for c, t in dtypes.items()
            if isinstance(t, pd.CategoricalDtype) and t.ordered and str(c) in pf.text]
        if ordered:
            from ._errors import DataError

            raise DataError(f"ordered Categorical column(s) {ordered} in Dask data: R (and "
                            "mixeff in memory) code them by polynomial contrasts, which the "
                            "Dask path does not; make them unordered, or use C(x, Poly)")

        fit = lmer_dask(formula, data, reml, weights, offset, optimizer=optimizer,
                        check_nlev=check_nlev, check_nobs_vs_nre=check_nobs_vs_nre,
                        verbose=verbose, blas_threads=blas_threads,
                        memory_limit=memory_limit,
                        allow_python=allow_python, eval_env=eval_env)
        if data_name is not None:
            fit.data_name = data_name
        _warn_convergence(fit)
        return fit
    from ._frames import as_pandas

    data = as_pandas(data)   # polars, pyarrow, ... (dataframe interchange protocol)
    t0 = time.perf_counter()
    design = build_design(pf, data, weights=weights, offset=offset,
                          check_nlev=check_nlev, check_nobs_vs_nre=check_nobs_vs_nre,
                          contrasts=contrasts, subset=subset, na_action=na_action,
                          allow_python=allow_python, eval_env=eval_env)
    t_design = time.perf_counter() - t0
    fit = fit_design(design, reml=reml, optimizer=optimizer, verbose=verbose,
                     blas_threads=blas_threads, data_name=data_name,
                     memory_limit=memory_limit)
    fit.timings = {"design": t_design, **fit.timings}
    fit.data = data
    fit.names = names
    fit._r_args = {k: v for k, v in (("contrasts", contrasts), ("subset", subset),
                                     ("na_action", na_action), ("names", names))
                   if v is not None}
    _warn_convergence(fit)
    return fit


def _warn_convergence(fit) -> None:
    """A :class:`~mixeff.ConvergenceWarning` per failed convergence check, as lme4's,
    and a :class:`~mixeff.SingularFitWarning` for a singular fit, both attributed to the
    user's call (the first frame outside mixeff; see :mod:`._warnings`)."""
    from ._warnings import warn_fit

    warn_fit(fit)


class _SharedBlasLimit:
    """The BLAS thread limit of the running fits, shared by all of them.

    BLAS libraries have one process-wide thread count, so a limit entered and left per
    fit would leak between concurrent fits (one fit's exit restoring the count while
    another still runs, or restoring another fit's limit for good). Instead the first
    fit to enter sets the limit, later ones only count themselves in, and the last to
    leave restores the counts found by the first. While any fit runs the process (every
    thread, fits with ``blas_threads=None`` included) uses the first fit's thread count.

    threadpoolctl (>= 3.8) lets only one "controlling" thread change a process-wide
    OpenBLAS pool and silently ignores the others, e.g. every worker thread while the
    main thread is inside ``threadpool_limits``. Fits can start and end on any thread,
    so control is released before and after each change (the counts are changed only
    while no fit runs, under the lock).
    """

    _lock = threading.Lock()
    _users = 0
    _limiter = None
    _controller = None

    def __init__(self, threads: int):
        self.threads = int(threads)

    @staticmethod
    def _release_control() -> None:
        try:
            from threadpoolctl import OpenBLASController
        except ImportError:  # pragma: no cover - older threadpoolctl: no controlling thread
            return
        clear = getattr(OpenBLASController, "clear_controlling_thread", None)
        if clear is not None:
            clear(force=True)

    def __enter__(self):
        cls = type(self)
        with cls._lock:
            if cls._users == 0:
                if cls._controller is None:
                    from threadpoolctl import ThreadpoolController

                    from ._cholmod import sparse_cholesky_available

                    sparse_cholesky_available()   # load CHOLMOD's BLAS before the stock-take
                    cls._controller = ThreadpoolController()
                cls._release_control()
                try:
                    cls._limiter = cls._controller.limit(limits=self.threads,
                                                         user_api="blas")
                finally:
                    cls._release_control()
            cls._users += 1
        return self

    def __exit__(self, *exc) -> bool:
        cls = type(self)
        with cls._lock:
            cls._users -= 1
            if cls._users == 0:
                limiter, cls._limiter = cls._limiter, None
                cls._release_control()
                try:
                    limiter.restore_original_limits()
                finally:
                    cls._release_control()
        return False


def _reset_blas_limit_in_child() -> None:
    """After ``fork()``: no fit runs in the child, whatever the parent's threads did.

    A fork while another thread of the parent was inside a fit would leave the child with
    a count of running fits that never ends (its BLAS counts limited for good) and
    possibly a held lock; the child starts afresh, with the parent's original counts.
    """
    cls = _SharedBlasLimit
    cls._lock = threading.Lock()
    limiter, cls._limiter = cls._limiter, None
    if cls._users and limiter is not None:
        try:
            limiter.restore_original_limits()
        except Exception:  # pragma: no cover - best effort in a fresh child
            pass
    cls._users = 0


os.register_at_fork(after_in_child=_reset_blas_limit_in_child)


def _blas_limit(threads: int | None):
    """Context manager limiting the BLAS threads during a fit (a no-op for ``None``).

    Safe for concurrent fits: see :class:`_SharedBlasLimit`.
    """
    import contextlib

    if threads is None:
        return contextlib.nullcontext()
    return _SharedBlasLimit(threads)


def fit_design(design, reml: bool = True, optimizer: str = "auto",
               factorization: str = "auto", verbose: bool = False,
               blas_threads: int | None = 1, data_name: str | None = None,
               memory_limit: int | str | None = None) -> LmerFit:
    """Fit a model from a built :class:`~mixeff._design.Design` (stages 3-6).

    ``data_name`` is the name of the data for the summary and ``memory_limit`` the
    factorisation's memory budget (see :func:`lmer`).
    The seconds spent in each stage are kept in ``fit.timings``. Fits may run
    concurrently from several threads; ``blas_threads`` is process-wide (see
    :class:`_SharedBlasLimit`): while fits run, the BLAS libraries use the thread count
    of the first of them, and the original counts come back when the last one ends.
    """
    optimizer = _check_choice("optimizer", optimizer, OPTIMIZERS)
    factorization = _check_choice("factorization", factorization, FACTORIZATIONS)
    reml = _check_bool("reml", reml)
    from ._memory import parse_memory_limit

    memory_limit = parse_memory_limit(memory_limit)
    if not design.terms:
        raise _no_random_terms(design.formula.text)
    threads = blas_threads if blas_threads is not None else (os.cpu_count() or 1)
    with _blas_limit(blas_threads):
        return _fit_design(design, reml, optimizer, factorization, verbose, data_name,
                           threads, memory_limit)


def _breakdown(design, method: str, err: Exception) -> DataError:
    """The error for a fit whose linear algebra broke down on the way to the optimum.

    lme4 stops in such cases too (``Downdated VtV is not positive definite``, ``pwrssUpdate
    did not converge``); the message names the usual causes.
    """
    return DataError(
        f"the fit of {design.formula.text!r} broke down numerically in the optimizer "
        f"({method}: {type(err).__name__}: {err}). The model is probably not identifiable "
        "from these data (an exact or nearly exact fit, as many random effects as "
        "observations, extreme weight ratios) or variables are on very different scales: "
        "consider rescaling (lme4 stops on such data with 'Downdated VtV is not positive "
        "definite')")


def _fit_design(design, reml, optimizer, factorization, verbose,
                data_name=None, threads=1, memory_limit=None) -> LmerFit:
    import time

    from ._blocks import build_blocks
    from ._checks import check_convergence
    from ._fit import LmerFit
    from ._lambda import ReStructure, lme4_term_order
    from ._objective import LmmObjective
    from ._optimizer import minimize_theta, scaled_start

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
    obj = LmmObjective(blocks, reml=reml, factorization=factorization, threads=threads,
                       memory_limit=memory_limit)
    t2 = time.perf_counter()
    method = choose_optimizer(obj) if optimizer == "auto" else optimizer
    try:
        # random-effect covariates on a large or small scale: theta scaled by them, from
        # lme4's start taken on their scale (ordinary fits: lme4's start, unscaled)
        sum_w = None if design.weights is None else float(np.sum(design.weights))
        optsum = minimize_theta(obj, **scaled_start(blocks, sum_w, method), method=method,
                                verbose=verbose)
        t3 = time.perf_counter()
        optsum.messages.extend(check_convergence(obj, optsum))
    except MixeffError:
        raise
    except (np.linalg.LinAlgError, ValueError, FloatingPointError, ZeroDivisionError) as err:
        raise _breakdown(design, method, err) from err
    t4 = time.perf_counter()
    fit = LmerFit(design=design, structure=re, blocks=blocks, objective_fn=obj,
                  optsum=optsum, term_order=order, data_name=data_name)
    fit.timings = {"blocks": t1 - t0, "analysis": t2 - t1, "optimizer": t3 - t2,
                   "checks": t4 - t3, "fit_object": time.perf_counter() - t4}
    return fit
