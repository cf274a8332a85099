"""Fitting from partitioned data through Dask: the rows never meet in one process.

Everything a fit needs from the rows is a sum over rows (``Z'WZ``, ``Z'WX``, ``X'WX``,
``Z'Wy``, ``X'Wy``, ``y'Wy``, the row count), so :func:`lmer_dask` evaluates the formula
partition by partition on the workers and reduces the sums by Dask (tree reduction); the
optimisation then runs on the reduced blocks in the client, exactly as for in-memory data.

Two passes over the partitions:

1. level sets: per partition the used rows (rows with a missing value in a used column,
   or zero weight, are dropped as :func:`mixeff._design.build_design` drops them), the
   observed values of every grouping factor (and observed combinations for ``a:b``), the
   observed values of the columns the fixed part codes by contrasts, a few rows as a
   prototype; reduced to the global level sets, ordered as the in-memory design orders
   them. A formulaic model spec is built on a prototype frame holding every level, so
   every partition produces the same columns whatever levels it sees.
2. sums: per partition the response, ``X``, the term matrices and global level codes,
   then the cross-product blocks (the ``Z'Z`` pattern of a partition is the set of level
   pairs it holds; the reduction takes the union), a QR factor of ``X`` (for lme4's rank
   rule, decided on the reduced factor as in memory) and counts.

Partitions may see any subset of the levels, arrive in any order, or be empty. Dask is
imported only here, and only when a Dask fit is asked for.

What the fit object offers: everything computed from the blocks (``summary()``,
``coef_table()``, ``vcov()``, ``ranef()``, ``varcorr()``, ``anova()`` of all types,
``confint()`` but the bootstrap, ``refit(reml=...)``, ``ranova()`` (mostly from the
blocks), ``update()`` refits from the Dask data); ``fitted()``, ``residuals()``,
``hatvalues()``, ``cooks_distance()`` and ``augment()`` come back as Dask collections
computed partition by partition. ``simulate()`` and predictions on the fitted rows are not
available (``predict(newdata)`` on a pandas DataFrame is).

Limits: ``weights=`` and ``offset=`` must be column names; stateful transforms
(``scale(x)``, ``center(x)``, ``poly(x, 2)``) need all rows at once and are refused;
a factor coded by contrasts must come from a column (``f``, ``C(x)``), not from an
expression (``C(x > 0)``); Kenward-Roger on a weighted fit is refused (pbkrtest's
unweighted cross-products are not summed). The blocks equal the in-memory ones up to the
order of the sums (~1e-15 relative); the optimiser, which stops where the objective no
longer tells points apart, then returns theta within ~1e-7 relative of the in-memory
fit's, and both are within that of the common optimum.
"""

from __future__ import annotations

import glob as _glob
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ._errors import DataError, FormulaError

__all__ = ["is_dask_input", "lmer_dask", "DaskFitInfo"]

_SPLIT_EVERY = 8
_PROTO_ROWS = 16
_SAMPLE_ROWS = 2000   # rows kept by the level pass: prototype, and beta0 of the shift


# --------------------------------------------------------------------------------------
# what counts as Dask input (no Dask import)
# --------------------------------------------------------------------------------------


_PARQUET_EXT = (".parquet", ".pq", ".parq")


def is_dask_input(data: Any) -> bool:
    """True for a Dask DataFrame or a path/glob of Parquet files (Dask not imported)."""
    mod = type(data).__module__ or ""
    if mod.split(".")[0] in ("dask", "dask_expr") and hasattr(data, "npartitions"):
        return True
    if isinstance(data, (str, os.PathLike)):
        s = os.fspath(data)
        low = s.lower()
        if low.endswith((".parquet", ".pq", ".parq")) or _glob.has_magic(s):
            return True
        if os.path.isdir(s):
            return bool(_glob.glob(os.path.join(s, "**", "*.parq*"), recursive=True))
    return False


def _as_dask(data: Any):
    try:
        import dask.dataframe as dd
    except ImportError as err:  # pragma: no cover - the extra is not installed
        raise ImportError('fitting Parquet files or Dask DataFrames needs Dask: pip install '
                          '"mixeff[dask]"') from err

    if isinstance(data, (str, os.PathLike)):
        path = _parquet_paths(os.fspath(data))
        try:
            return dd.read_parquet(path)
        except (OSError, ValueError) as err:   # Arrow's errors are OSError / ValueError
            msg = str(err).strip().splitlines()
            raise DataError(f"cannot read the Parquet data {os.fspath(data)!r}: "
                            f"{type(err).__name__}: {msg[-1] if msg else ''}") from err
    return data


def _parquet_paths(s: str) -> str | list[str]:
    """The Parquet file(s) of a path, directory or glob, or a DataError saying why not."""
    def not_parquet(files: list[str]) -> DataError:
        ext = sorted({os.path.splitext(f)[1] or "(no extension)" for f in files})
        return DataError(
            f"data {s!r} matches files that are not Parquet ({', '.join(ext)}, e.g. "
            f"{files[0]!r}): mixeff reads Parquet files from a path, directory or glob; "
            "read other formats first (pandas.read_csv, dask.dataframe.read_csv) and pass "
            "the DataFrame")

    if _glob.has_magic(s):
        files = sorted(f for f in _glob.glob(s, recursive=True) if os.path.isfile(f))
        if not files:
            raise DataError(f"no files match the data glob {s!r}")
        other = [f for f in files if not f.lower().endswith(_PARQUET_EXT)]
        if other:
            raise not_parquet(other)
        return files
    if not os.path.exists(s):
        raise DataError(f"data path {s!r} does not exist")
    if os.path.isfile(s) and not s.lower().endswith(_PARQUET_EXT):
        raise not_parquet([s])
    return s


# --------------------------------------------------------------------------------------
# the plan: everything a worker needs to turn a partition into numbers
# --------------------------------------------------------------------------------------


@dataclass
class _GroupMap:
    """Global level codes of one grouping factor (``a`` or ``a:b:...``)."""

    factors: list[str]
    labels: np.ndarray                          # level labels, in level order
    steps: list[tuple[int, np.ndarray]] = field(default_factory=list)  # interactions


@dataclass
class _Plan:
    pf: Any
    response_col: str | None
    response_name: str
    used: list[str]
    numeric: list[str]
    floatcheck: list[str]
    weights_col: str | None
    offset_col: str | None
    factor_cols: list[str]
    group_factors: dict[str, list[str]]
    cat_cols: list[str]
    # after pass 1
    factor_values: dict[str, pd.Index] = field(default_factory=dict)
    groups: dict[str, _GroupMap] = field(default_factory=dict)
    categories: dict[str, Any] = field(default_factory=dict)
    fixed_spec: Any = None
    xnames_full: list[str] = field(default_factory=list)
    term_specs: dict[str, Any] = field(default_factory=dict)
    term_colnames: dict[str, list[str]] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)
    nlev: list[int] = field(default_factory=list)   # storage order
    beta0: np.ndarray | None = None   # response shifted by X beta0 in the sums (precision)
    allow_python: bool = False        # expressions as Python code (else the allow-list)
    eval_env: Any = None              # extra names for them (allow_python only)


def _make_plan(pf, meta: pd.DataFrame, weights, offset, extra_used=(),
               allow_python: bool = False, eval_env=None) -> _Plan:
    """Resolve the names of the formula against the columns (as build_design step 1).

    The expressions are checked against the allow-list here, in this process, before any
    partition is evaluated (unless ``allow_python``); the workers check them again.
    """
    from ._design import _formulaic_names, _is_numeric, resolve_names

    cols, response_col, response_name = resolve_names(pf, meta, allow_python, eval_env)
    vec = {}
    for arg, what in ((weights, "weights"), (offset, "offset")):
        if arg is None:
            vec[what] = None
            continue
        if not isinstance(arg, str):
            raise DataError(f"with Dask data, {what} must be the name of a column (arrays "
                            "cannot be matched to the rows of the partitions)")
        if arg not in cols.names:
            raise FormulaError(f"{what} column {arg!r} is not a column of the data", None,
                               None)
        if not _is_numeric(meta[arg].dtype):
            raise DataError(f"{what} column {arg!r} is not numeric (dtype "
                            f"{meta[arg].dtype})")
        vec[what] = arg
    # Columns formulaic codes by contrasts: non-numeric ones, and numeric ones inside C().
    cat_cols = [c for c in cols.numeric if not _is_numeric(meta[c].dtype)]
    for spec in [pf.fixed] + [t.expr for t in pf.random]:
        _, calls = _formulaic_names(spec)
        for fname in ("C", "factor"):
            if fname not in calls:
                continue
            for c in _names_in_calls(spec, fname):
                if c in cols.names and c not in cat_cols:
                    cat_cols.append(c)
    used = list(cols.used)
    for c in (vec["weights"], vec["offset"], *extra_used):
        if c is not None and c not in used:
            used.append(c)
    floatcheck = [c for c in cols.numeric if _is_numeric(meta[c].dtype)]
    group_factors = {t.label: list(t.factors) for t in pf.random}
    factor_cols = list(dict.fromkeys(f for t in pf.random for f in t.factors))
    return _Plan(pf=pf, response_col=response_col, response_name=response_name, used=used,
                 numeric=list(cols.numeric), floatcheck=floatcheck,
                 weights_col=vec["weights"], offset_col=vec["offset"],
                 factor_cols=factor_cols, group_factors=group_factors, cat_cols=cat_cols,
                 allow_python=allow_python, eval_env=eval_env)


def _names_in_calls(spec: str, fname: str) -> list[str]:
    """Variable names inside calls to ``fname`` in the factors of a formulaic formula."""
    import ast

    from formulaic import Formula

    from ._design import _python_names, _unquote

    out: list[str] = []
    for term in Formula(spec):
        for factor in term.factors:
            code, quoted = _unquote(factor.expr)
            try:
                tree = ast.parse(code, mode="eval")
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                        and node.func.id == fname):
                    sub = ast.unparse(node)
                    for k, v in quoted.items():
                        sub = sub.replace(k, f"`{v}`")
                    out += _python_names(sub)[0]
    return list(dict.fromkeys(out))


# --------------------------------------------------------------------------------------
# per partition: used rows
# --------------------------------------------------------------------------------------


def _used_rows(df: pd.DataFrame, plan: _Plan) -> tuple[np.ndarray, int, int]:
    """Mask of the used rows, rows with missing values, rows with zero weight."""
    from ._design import _float_values

    n = len(df)
    na = np.zeros(n, dtype=bool)
    for c in plan.used:
        na |= df[c].isna().to_numpy()
    zero = np.zeros(n, dtype=bool)
    if plan.weights_col is not None:
        w = _float_values(df[plan.weights_col])
        na |= np.isnan(w)
        zero = (w == 0) & ~na
        if np.isinf(w[~na]).any():
            raise DataError("weights must be finite")
        if (w[~na] < 0).any():
            i = int(np.flatnonzero((w < 0) & ~na)[0])
            raise DataError(f"weights must be non-negative (row {df.index[i]!r} has "
                            f"{w[i]:g})")
    for c in plan.floatcheck:
        s = df[c]
        if pd.api.types.is_complex_dtype(s.dtype):
            raise DataError(f"column {c!r} has complex values; mixeff needs real numbers")
        if s.dtype.kind == "f" or not isinstance(s.dtype, np.dtype):
            inf = np.isinf(_float_values(s)) & ~na
            if inf.any():
                raise DataError(f"column {c!r} has infinite values (e.g. row "
                                f"{df.index[int(np.flatnonzero(inf)[0])]!r})")
    keep = ~(na | zero)
    return keep, int(na.sum()), int(zero.sum())


def _unique(s: pd.Series) -> pd.Series:
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(s.cat.categories.dtype)
    return pd.Series(pd.unique(s), dtype=s.dtype)


# --------------------------------------------------------------------------------------
# pass 1: level sets
# --------------------------------------------------------------------------------------


def _levels_chunk(df: pd.DataFrame, plan: _Plan) -> dict:
    keep, n_na, n_zero = _used_rows(df, plan)
    sub = df[keep] if not keep.all() else df
    cols = list(dict.fromkeys(plan.factor_cols + plan.cat_cols))
    values = {c: _unique(sub[c]) for c in cols}
    combos = {}
    for label, fs in plan.group_factors.items():
        if len(fs) > 1 and label not in combos:
            fr = sub[fs].copy()
            for f in fs:
                if isinstance(fr[f].dtype, pd.CategoricalDtype):
                    fr[f] = fr[f].astype(fr[f].cat.categories.dtype)
            combos[label] = fr.drop_duplicates().reset_index(drop=True)
    sample = sub[plan.used].head(_SAMPLE_ROWS).reset_index(drop=True)
    cats = {c: list(df[c].dtype.categories) for c in cols
            if isinstance(df[c].dtype, pd.CategoricalDtype)}
    return {"counts": np.array([len(df), n_na, n_zero], dtype=np.int64), "values": values,
            "combos": combos, "sample": sample, "cats": cats}


def _levels_combine(*parts: dict) -> dict:
    out = {"counts": sum(p["counts"] for p in parts)}
    out["values"] = {c: pd.concat([p["values"][c] for p in parts], ignore_index=True)
                     .drop_duplicates().reset_index(drop=True) for c in parts[0]["values"]}
    out["combos"] = {c: pd.concat([p["combos"][c] for p in parts], ignore_index=True)
                     .drop_duplicates().reset_index(drop=True) for c in parts[0]["combos"]}
    samples = [p["sample"] for p in parts if len(p["sample"])]
    out["sample"] = (pd.concat(samples, ignore_index=True).head(_SAMPLE_ROWS) if samples
                     else parts[0]["sample"])
    cats: dict[str, list] = {}
    for p in parts:   # category order of the partitions (when the meta does not know it)
        for c, lst in p["cats"].items():
            seen = cats.setdefault(c, [])
            seen += [v for v in lst if v not in set(seen)]
    out["cats"] = cats
    return out


def _ordered_levels(values: pd.Series, meta_dtype, seen_cats=None
                    ) -> tuple[pd.Index, np.ndarray]:
    """Observed values in the in-memory level order, and their labels."""
    from ._design import _factor

    if isinstance(meta_dtype, pd.CategoricalDtype):
        cats = meta_dtype.categories
        if len(cats) and not (len(cats) == 1 and str(cats[0]) == "__UNKNOWN_CATEGORIES__"):
            s = pd.Series(pd.Categorical(values, categories=cats))
        elif seen_cats:
            s = pd.Series(pd.Categorical(values, categories=seen_cats))
        else:
            s = pd.Series(pd.Categorical(values))
    else:
        s = values
    codes, labels = _factor(s.reset_index(drop=True))
    order = np.argsort(codes, kind="stable")
    return pd.Index(values.to_numpy()[order]), labels


def _lookup(index: pd.Index, s: pd.Series, what: str) -> np.ndarray:
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(s.cat.categories.dtype)
    codes = index.get_indexer(s.to_numpy())
    if (codes < 0).any():
        raise DataError(f"a value of {what} was not seen when the levels were collected "
                        "(the data changed between the passes over the partitions?)")
    return codes.astype(np.int64)


def _group_codes(sub: pd.DataFrame, plan: _Plan, label: str) -> np.ndarray:
    g = plan.groups[label]
    codes = _lookup(plan.factor_values[g.factors[0]], sub[g.factors[0]], repr(g.factors[0]))
    for f, (m2, uniq) in zip(g.factors[1:], g.steps, strict=True):
        c2 = _lookup(plan.factor_values[f], sub[f], repr(f))
        codes = np.searchsorted(uniq, codes * m2 + c2).astype(np.int64)
    return codes


def _finish_levels(plan: _Plan, meta: pd.DataFrame, lv: dict) -> None:
    """Global level sets, formulaic specs on a prototype holding every level."""
    from ._design import _model_matrix, _rename
    from ._lambda import lme4_term_order

    labels_of: dict[str, np.ndarray] = {}
    for f in plan.factor_cols:
        vals, labels = _ordered_levels(lv["values"][f], meta[f].dtype, lv["cats"].get(f))
        plan.factor_values[f] = vals
        labels_of[f] = labels
    for label, fs in plan.group_factors.items():
        if label in plan.groups:
            continue
        if len(fs) == 1:
            plan.groups[label] = _GroupMap(factors=fs, labels=labels_of[fs[0]])
            continue
        combo = lv["combos"][label]
        codes = _lookup(plan.factor_values[fs[0]], combo[fs[0]], repr(fs[0]))
        labels = labels_of[fs[0]]
        steps = []
        for f in fs[1:]:
            c2 = _lookup(plan.factor_values[f], combo[f], repr(f))
            l2 = labels_of[f]
            m2 = len(l2)
            comb = codes * m2 + c2
            uniq = np.unique(comb)
            codes = np.searchsorted(uniq, comb)
            labels = labels[uniq // m2] + ":" + l2[uniq % m2]
            steps.append((m2, uniq))
        plan.groups[label] = _GroupMap(factors=fs, labels=labels, steps=steps)

    # prototype frame: every level of every contrast-coded column, sample numeric values
    sample = lv["sample"]
    L = max([_PROTO_ROWS, len(sample)] + [len(lv["values"][c]) for c in plan.cat_cols])
    proto: dict[str, Any] = {}
    for c in plan.numeric:
        dtype = meta[c].dtype
        if c in plan.cat_cols:
            vals, _ = _ordered_levels(lv["values"][c], dtype, lv["cats"].get(c))
            if isinstance(dtype, pd.CategoricalDtype) or not (
                    pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)):
                plan.categories[c] = list(vals)
                proto[c] = pd.Categorical(np.resize(np.asarray(vals, dtype=object), L),
                                          categories=list(vals))
            elif pd.api.types.is_bool_dtype(dtype):
                proto[c] = np.resize(np.asarray(vals, dtype=bool), L)
            else:
                proto[c] = np.resize(np.asarray(vals), L)
        else:
            from ._design import _for_formulaic

            s = sample[c] if len(sample) else pd.Series(np.ones(1), name=c)
            v = _for_formulaic(s.reset_index(drop=True))
            proto[c] = np.resize(np.asarray(v), L)
    frame = pd.DataFrame(proto, index=pd.RangeIndex(L))
    text = plan.pf.text
    mm, _ = _model_matrix(plan.pf.fixed, frame, "fixed-effects part", text, None,
                          plan.allow_python, plan.eval_env)
    plan.fixed_spec = mm.model_spec
    plan.xnames_full = _rename(mm.columns)
    specs = [plan.fixed_spec]
    for term in plan.pf.random:
        if term.expr in plan.term_specs:
            continue
        if term.expr.strip() == "1":
            plan.term_specs[term.expr] = None
            plan.term_colnames[term.expr] = ["(Intercept)"]
            continue
        tm, Z = _model_matrix(term.expr, frame, "random-effects expression", text, term.start,
                              plan.allow_python, plan.eval_env)
        if Z.shape[1] == 0:
            raise FormulaError(f"random-effects term ({term.expr} | {term.label}) has no "
                               "columns", text, term.start)
        plan.term_specs[term.expr] = tm.model_spec
        plan.term_colnames[term.expr] = _rename(tm.columns)
        specs.append(tm.model_spec)
    for spec in specs:
        if getattr(spec, "transform_state", None):
            names = ", ".join(sorted(spec.transform_state))
            raise FormulaError(f"stateful transforms ({names}) need all the rows at once "
                               "and are not supported for Dask data; compute the column "
                               "beforehand", text, None)
        for expr, (kind, _state) in (spec.encoder_state or {}).items():
            if getattr(kind, "value", str(kind)) == "categorical":
                from ._design import _python_names

                try:
                    names = _python_names(expr)[0]
                except SyntaxError:
                    names = [expr]
                if not set(names) & set(plan.cat_cols) and expr not in plan.cat_cols:
                    raise FormulaError(f"the factor {expr!r} is coded by contrasts but its "
                                       "levels cannot be collected from Dask data; make it "
                                       "a column (or wrap a column in C())", text, None)
    nl = [len(plan.groups[t.label].labels) for t in plan.pf.random]
    plan.order = lme4_term_order(nl)
    plan.nlev = [nl[i] for i in plan.order]


# --------------------------------------------------------------------------------------
# pass 2: sums
# --------------------------------------------------------------------------------------


def _spec_matrix(spec, frame: pd.DataFrame, what: str, env=None) -> np.ndarray:
    from ._expr import materializer

    materializer()  # registered in this (worker) process before the spec names it
    mm = spec.get_model_matrix(frame, na_action="ignore", context=dict(env or {}))
    values = np.empty(mm.shape, dtype=np.float64, order="F")
    for j in range(mm.shape[1]):
        try:
            values[:, j] = mm.iloc[:, j].to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"column {str(mm.columns[j])!r} of the {what} is not real "
                            "numbers") from None
    return values


@dataclass
class _Rows:
    """One partition's used rows, evaluated."""

    pos: np.ndarray
    y: np.ndarray
    offset: np.ndarray | None
    X: np.ndarray
    mats: dict[str, np.ndarray]
    codes: dict[str, np.ndarray]
    w: np.ndarray | None
    n_na: int
    n_zero: int
    n_nan: int


def _evaluate_rows(df: pd.DataFrame, plan: _Plan) -> _Rows:
    from ._design import _eval_python, _float_values, _for_formulaic, _is_numeric, _Namespace

    keep, n_na, n_zero = _used_rows(df, plan)
    pos = np.flatnonzero(keep)
    sub = df[keep] if not keep.all() else df
    n = len(sub)
    raw: dict[str, Any] = {}
    frame_cols: dict[str, Any] = {}
    for c in plan.numeric:
        s = sub[c].reset_index(drop=True)
        if _is_numeric(s.dtype) and not isinstance(s.dtype, np.dtype):
            s = pd.Series(_float_values(s), name=c)
        raw[c] = s
        if c in plan.categories:
            if isinstance(s.dtype, pd.CategoricalDtype):
                s = s.astype(s.cat.categories.dtype)
            frame_cols[c] = pd.Categorical(s.to_numpy(dtype=object),
                                           categories=plan.categories[c])
        else:
            frame_cols[c] = _for_formulaic(s)
    frame = pd.DataFrame(frame_cols, index=pd.RangeIndex(n))
    pf = plan.pf
    text = pf.text
    ns = _Namespace(raw, plan.allow_python, plan.eval_env)
    tilde = text.find("~")
    if plan.response_col is not None:
        y = np.asarray(raw[plan.response_col], dtype=np.float64)
    else:
        y = _eval_python(pf.response, ns, n, "response", text,
                         len(text) - len(text.lstrip()))
    off = None
    if plan.offset_col is not None:
        off = _float_values(sub[plan.offset_col])
    for expr in pf.offset_exprs:
        pos = text.find(expr, tilde)
        v = _eval_python(expr, ns, n, "offset", text, pos if pos >= 0 else None)
        off = v if off is None else off + v
    X = _spec_matrix(plan.fixed_spec, frame, "fixed-effects part", plan.eval_env) if n else \
        np.zeros((0, len(plan.xnames_full)))
    mats: dict[str, np.ndarray] = {}
    for expr, spec in plan.term_specs.items():
        if spec is None or n == 0:
            mats[expr] = np.ones((n, len(plan.term_colnames[expr])))
        else:
            mats[expr] = np.ascontiguousarray(_spec_matrix(spec, frame, "random-effects "
                                                           f"expression {expr!r}",
                                                           plan.eval_env))
    bad = np.zeros(n, dtype=bool)
    checks = [("response", y)] + ([("offset", off)] if off is not None else [])
    checks += [(f"fixed-effects column {nm!r}", X[:, j])
               for j, nm in enumerate(plan.xnames_full)]
    checks += [(f"random-effects expression {e!r}", Z[:, j]) for e, Z in mats.items()
               for j in range(Z.shape[1])]
    for what, v in checks:
        if np.isinf(v).any():
            raise DataError(f"{what} has infinite values")
        bad |= np.isnan(v)
    n_nan = int(bad.sum())
    w = None if plan.weights_col is None else _float_values(sub[plan.weights_col])
    if n_nan:
        good = ~bad
        sub = sub[good]
        pos = pos[good]
        y, X = y[good], np.asfortranarray(X[good])
        off = None if off is None else off[good]
        w = None if w is None else w[good]
        mats = {e: np.ascontiguousarray(Z[good]) for e, Z in mats.items()}
    codes = {label: _group_codes(sub, plan, label) for label in plan.groups}
    return _Rows(pos=pos, y=y, offset=off, X=X, mats=mats, codes=codes, w=w,
                 n_na=n_na, n_zero=n_zero, n_nan=n_nan)


def _sums_chunk(df: pd.DataFrame, plan: _Plan) -> dict:
    import scipy.linalg

    from . import _kernels as K

    r = _evaluate_rows(df, plan)
    n, p = r.X.shape
    w = np.ones(n) if r.w is None else np.ascontiguousarray(r.w, dtype=np.float64)
    yo = r.y if r.offset is None else r.y - r.offset
    shifted = plan.beta0 is not None
    XY = np.empty((n, p + 1 + shifted))
    XY[:, :p] = r.X
    XY[:, p] = yo
    if shifted:   # y0 = y - X beta0: the objective's sums without cancellation
        XY[:, p + 1] = yo - r.X @ plan.beta0
    XYtXY = XY.T @ (XY * w[:, None])
    R = scipy.linalg.qr(r.X, mode="r", check_finite=False)[0] if n else np.zeros((0, p))
    terms = [plan.pf.random[i] for i in plan.order]
    codes = [r.codes[t.label] for t in terms]
    mats = [r.mats[t.expr] for t in terms]
    diag, ztxy = [], []
    for t, m in enumerate(plan.nlev):
        diag.append(K.diag_block_sums(codes[t], mats[t], w, m))
        ztxy.append(K.term_cross_sums(codes[t], mats[t], w, XY, m))
    pairs = {}
    for s in range(len(terms)):
        for t in range(s):
            key = codes[s] * plan.nlev[t] + codes[t]
            uniq, inv = np.unique(key, return_inverse=True)
            pb = K.pair_block_sums(inv.astype(np.int64).ravel(), mats[s], mats[t], w,
                                   uniq.size)
            pairs[(s, t)] = (uniq.astype(np.int64), pb)
    rng = np.array([np.min(yo), np.max(yo), np.max(np.abs(r.y))]) if n else \
        np.array([np.inf, -np.inf, 0.0])
    if n and r.offset is not None:
        rng[2] = max(rng[2], float(np.max(np.abs(r.offset))))
    # largest |value| * sqrt(w) of each column (the in-memory design's scale check)
    sw = np.sqrt(w)
    cols = [yo] + [r.X[:, j] for j in range(p)]
    cols += [Z[:, j] for Z in r.mats.values() for j in range(Z.shape[1])]
    scale = np.array([float(np.max(np.abs(v) * sw)) if n else 0.0 for v in cols])
    return {"n": n, "counts": np.array([len(df), r.n_na, r.n_zero, r.n_nan], dtype=np.int64),
            "XYtXY": XYtXY, "R": R, "xsum": r.X.sum(axis=0), "diag": diag, "ztxy": ztxy,
            "pairs": pairs,
            "sum_log_w": float(np.sum(np.log(w))) if r.w is not None else 0.0,
            "range": rng, "scale": scale}


def _merge_pairs(items: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    keys = np.concatenate([k for k, _ in items])
    vals = np.concatenate([v for _, v in items])
    uniq, inv = np.unique(keys, return_inverse=True)
    inv = inv.ravel()
    flat = vals.reshape(vals.shape[0], -1)
    out = np.empty((uniq.size, flat.shape[1]))
    for j in range(flat.shape[1]):
        out[:, j] = np.bincount(inv, weights=flat[:, j], minlength=uniq.size)
    return uniq, out.reshape((uniq.size,) + vals.shape[1:])


def _sums_combine(*parts: dict) -> dict:
    import scipy.linalg

    first = parts[0]
    Rs = [p["R"] for p in parts if p["R"].shape[0]]
    p_ = first["XYtXY"].shape[0] - 1
    if Rs:
        R = scipy.linalg.qr(np.vstack(Rs), mode="r", check_finite=False)[0]
        R = R[: min(R.shape[0], p_)]
    else:
        R = np.zeros((0, p_))
    rng = np.array([min(p["range"][0] for p in parts), max(p["range"][1] for p in parts),
                    max(p["range"][2] for p in parts)])
    return {"n": sum(p["n"] for p in parts), "counts": sum(p["counts"] for p in parts),
            "XYtXY": sum(p["XYtXY"] for p in parts), "R": R,
            "xsum": sum(p["xsum"] for p in parts),
            "diag": [sum(p["diag"][t] for p in parts) for t in range(len(first["diag"]))],
            "ztxy": [sum(p["ztxy"][t] for p in parts) for t in range(len(first["ztxy"]))],
            "pairs": {k: _merge_pairs([p["pairs"][k] for p in parts])
                      for k in first["pairs"]},
            "sum_log_w": sum(p["sum_log_w"] for p in parts), "range": rng,
            "scale": np.maximum.reduce([p["scale"] for p in parts])}


def _say(msg: str) -> None:
    import sys

    print(f"mixeff (dask): {msg}", file=sys.stderr, flush=True)


def _tree_reduce(ddf, chunk, combine, plan: _Plan, split_every: int):
    """Map ``chunk`` over the partitions and reduce pairwise-by-groups on the workers."""
    import dask

    parts = ddf.to_delayed()
    plan_d = dask.delayed(plan, traverse=False)
    level = [dask.delayed(chunk)(part, plan_d) for part in parts]
    while len(level) > 1:
        level = [dask.delayed(combine)(*level[i:i + split_every])
                 for i in range(0, len(level), split_every)]
    try:
        (out,) = dask.compute(level[0])
    except Exception as err:
        # distributed reruns the tasks of a worker that dies; a task whose workers keep
        # dying (allowed-failures) ends in KilledWorker: no partial sums are ever used
        if type(err).__name__ == "KilledWorker":
            raise DataError(f"the Dask workers computing the partitions died repeatedly "
                            f"({err}); nothing was fitted. Check the workers' memory "
                            "(fewer rows per partition) and logs, then fit again") from err
        raise
    return out


# --------------------------------------------------------------------------------------
# the fit
# --------------------------------------------------------------------------------------


def lmer_dask(formula, data, reml: bool = True, weights=None, offset=None, *,
              optimizer: str = "auto", check_nlev: str = "stop",
              check_nobs_vs_nre: str = "stop", verbose: bool = False,
              blas_threads: int | None = 1, split_every: int = _SPLIT_EVERY,
              extra_used: tuple[str, ...] = (), memory_limit=None,
              allow_python: bool = False, eval_env=None):
    """Fit a linear mixed model to a Dask DataFrame (or Parquet files), as :func:`lmer`.

    The rows are evaluated and summed on the Dask workers of the active scheduler; only
    level sets and cross-product blocks reach this process.
    """
    import time

    from ._api import _blas_limit, choose_optimizer
    from ._blocks import assemble_blocks
    from ._checks import check_convergence
    from ._design import (
        Design,
        ReTermDesign,
        _check_level,
        _independent_columns,
        _run_checks,
        as_parsed,
    )
    from ._errors import MixeffError
    from ._fit import LmerFit
    from ._lambda import ReStructure
    from ._objective import LmmObjective
    from ._optimizer import minimize_theta, scaled_start

    t0 = time.perf_counter()
    check_nlev = _check_level("check_nlev", check_nlev)
    check_nobs_vs_nre = _check_level("check_nobs_vs_nre", check_nobs_vs_nre)
    pf = as_parsed(formula)
    ddf = _as_dask(data)
    meta = ddf._meta
    if not pf.random:
        raise FormulaError("no random-effects terms in the formula; use mixeff.lm",
                           pf.text, None)
    from ._design import allow_python_arg

    allow_python = allow_python_arg(allow_python, eval_env)
    plan = _make_plan(pf, meta, weights, offset, extra_used, allow_python, eval_env)
    work = ddf[plan.used]

    lv = _tree_reduce(work, _levels_chunk, _levels_combine, plan, split_every)
    n_rows, n_na, n_zero = (int(v) for v in lv["counts"])
    if n_rows == 0:
        raise DataError("data are empty (0 rows)")
    if n_zero == n_rows:
        raise DataError(f"no rows left: all {n_rows} weights are zero (rows with zero "
                        "weight carry no information and are dropped)")
    if n_rows - n_na - n_zero == 0:
        raise DataError(f"no rows left: all {n_rows} rows have a missing value in a used "
                        f"column ({', '.join(map(repr, plan.used))})")
    _finish_levels(plan, meta, lv)
    plan.beta0 = _sample_beta0(plan, lv["sample"])
    del lv
    t1 = time.perf_counter()
    if verbose:
        _say(f"level sets from {ddf.npartitions} partitions ({n_rows:,} rows): "
             f"{t1 - t0:.1f} s")

    s = _tree_reduce(work, _sums_chunk, _sums_combine, plan, split_every)
    t2 = time.perf_counter()
    if verbose:
        _say(f"cross-product blocks reduced over the partitions: {t2 - t1:.1f} s")
    n = int(s["n"])
    _, n_na, n_zero, n_nan = (int(v) for v in s["counts"])
    if n == 0:
        raise DataError("no rows left: all rows have missing values after evaluating the "
                        "formula")
    messages: list[str] = []
    n_missing = n_na + n_nan
    if n_missing:
        messages.append(f"{n_missing} row{'s' if n_missing != 1 else ''} with missing "
                        "values dropped")
    if n_zero:
        messages.append(f"{n_zero} row{'s' if n_zero != 1 else ''} with zero weight dropped")

    # rank of X: lme4's rule on the reduced R factor (same column norms and dependencies)
    p_full = len(plan.xnames_full)
    R = s["R"]
    keep = _independent_columns(R) if p_full else np.zeros(0, dtype=bool)
    xnames = [nm for nm, k in zip(plan.xnames_full, keep, strict=True) if k]
    dropped = [nm for nm, k in zip(plan.xnames_full, keep, strict=True) if not k]
    if dropped:
        k = len(dropped)
        messages.append("fixed-effect model matrix is rank deficient so dropping "
                        f"{k} column{'s' if k != 1 else ''} / "
                        f"coefficient{'s' if k != 1 else ''}")
    idx = np.append(np.flatnonzero(keep), p_full)

    terms_formula: list[ReTermDesign] = []
    for term in pf.random:
        cn = plan.term_colnames[term.expr]
        terms_formula.append(ReTermDesign(
            label=term.label, codes=np.zeros(0, dtype=np.int32),
            levels=pd.Index(plan.groups[term.label].labels, dtype=object),
            matrix=np.zeros((0, len(cn))), colnames=list(cn), expr=term.expr))
    # level present in the level pass but with no row left after evaluation
    for ti, t in enumerate(pf.random):
        d = s["diag"][plan.order.index(ti)]
        if not np.all(np.einsum("mkk->m", np.abs(d)) > 0) and n_nan:
            raise DataError(f"evaluating the formula left levels of {t.label!r} without "
                            "rows; remove the rows with missing values first")
    _run_checks(terms_formula, n, check_nlev, check_nobs_vs_nre, messages)
    p = len(xnames)
    if p >= n:
        raise DataError(f"the fixed effects have {p} linearly independent columns for {n} "
                        "observations: no residual degrees of freedom are left")
    _check_scale(plan, s["scale"], keep, n, plan.weights_col is not None,
                 offset=plan.offset_col is not None or bool(pf.offset_exprs))
    rmin, rmax, size = s["range"]
    if rmax - rmin <= 64 * np.finfo(float).eps * size:
        raise DataError(f"response {plan.response_name!r} is constant: with zero variance "
                        "there are no variance components to estimate")

    re = ReStructure([pf.random[i].label for i in plan.order],
                     [list(plan.term_colnames[pf.random[i].expr]) for i in plan.order],
                     list(plan.nlev))
    wide = p_full + 1 + (plan.beta0 is not None)
    ZtXYw = np.vstack([z.reshape(-1, wide) for z in s["ztxy"]])
    ZtXY = ZtXYw[:, idx]
    XYtXY = s["XYtXY"][np.ix_(idx, idx)]
    blocks = assemble_blocks(re, s["diag"], s["pairs"], ZtXY, XYtXY, n, s["sum_log_w"])
    if plan.beta0 is not None and not np.any(plan.beta0[~keep]):
        from ._blocks import ResponseShift

        j, kk = p_full + 1, np.flatnonzero(keep)
        blocks.shift = ResponseShift(beta0=plan.beta0[kk].copy(),
                                     Zty=np.ascontiguousarray(ZtXYw[:, j]),
                                     Xty=s["XYtXY"][kk, j].copy(), yty=float(s["XYtXY"][j, j]))
    del ZtXYw
    xsum = s["xsum"][keep]
    del s
    design = Design(formula=pf, response_name=plan.response_name, y=np.zeros(0),
                    X=_standin_x(R[:, keep], xsum, n), xnames=xnames, dropped_xnames=dropped,
                    terms=terms_formula, weights=None, offset=None,
                    n_dropped=n_rows - n, row_index=pd.RangeIndex(0), messages=messages,
                    fixed_spec=plan.fixed_spec, allow_python=allow_python, eval_env=eval_env)
    t3 = time.perf_counter()
    with _blas_limit(blas_threads):
        obj = LmmObjective(blocks, reml=reml, memory_limit=memory_limit)
        t4 = time.perf_counter()
        method = choose_optimizer(obj) if optimizer == "auto" else optimizer
        try:
            optsum = minimize_theta(obj, **scaled_start(blocks, method=method), method=method,
                                    verbose=verbose)
            t5 = time.perf_counter()
            optsum.messages.extend(check_convergence(obj, optsum))
        except MixeffError:
            raise
        except (np.linalg.LinAlgError, ValueError, FloatingPointError,
                ZeroDivisionError) as err:   # as the in-memory fit (lme4 stops here too)
            from . import _api

            breakdown = getattr(_api, "_breakdown", None)
            if breakdown is None:
                raise
            raise breakdown(design, method, err) from err
        t6 = time.perf_counter()
        fit = LmerFit(design=design, structure=re, blocks=blocks, objective_fn=obj,
                      optsum=optsum, term_order=list(plan.order))
    fit.timings = {"levels": t1 - t0, "sums": t2 - t1, "blocks": t3 - t2,
                   "analysis": t4 - t3, "optimizer": t5 - t4, "checks": t6 - t5,
                   "fit_object": time.perf_counter() - t6}
    fit.data = ddf
    if plan.weights_col is not None:     # printed by summary() as R prints the call's
        fit.weights_name = plan.weights_col
    if plan.offset_col is not None:
        fit.offset_name = plan.offset_col
    fit._dask_info = DaskFitInfo(ddf=ddf, plan=plan, keep=keep,
                                 weighted=plan.weights_col is not None)
    return fit


def _sample_beta0(plan: _Plan, sample: pd.DataFrame) -> np.ndarray | None:
    """Least-squares coefficients of the response on ``X`` from the level pass's sample.

    The in-memory fit sums ``y0 = y - X beta0`` (``beta0`` the least-squares fit) besides
    ``y`` so that the objective does not lose the digits the residuals are below ``|y|``
    (:class:`mixeff._blocks.ResponseShift`); any ``beta0`` gives the same model, and one
    from a few thousand rows removes the cancellation as well. None when there is no
    usable sample.
    """
    from ._blocks import _least_squares
    from ._design import _independent_columns

    p = len(plan.xnames_full)
    if p == 0 or len(sample) == 0:
        return None
    try:
        r = _evaluate_rows(sample, plan)
    except (DataError, FormulaError, ValueError, TypeError):   # pragma: no cover
        return None
    yo = r.y if r.offset is None else r.y - r.offset
    w = np.ones(yo.size) if r.w is None else r.w
    keep = _independent_columns(r.X)
    beta = np.zeros(p)
    if not keep.any() or keep.sum() >= yo.size:
        return None
    beta[keep] = _least_squares(np.asarray(r.X[:, keep]), yo, w)
    return beta if np.all(np.isfinite(beta)) else None


def _check_scale(plan: _Plan, scale: np.ndarray, keep: np.ndarray, n: int,
                 weighted: bool, offset: bool) -> None:
    """Values whose cross-products overflow or underflow (as the in-memory design)."""
    from ._design import _MAX_SCALE, _MIN_SCALE

    rname = f"response {plan.response_name!r}" + (" minus the offset" if offset else "")
    what = [rname] + [f"fixed-effects column {nm!r}" for nm in plan.xnames_full]
    use = [True] + list(keep)
    labels = {}
    for t in plan.pf.random:
        labels.setdefault(t.expr, t.label)
    for expr in plan.term_specs:
        what += [f"column {nm!r} of the random-effects term ({expr} | {labels[expr]})"
                 for nm in plan.term_colnames[expr]]
        use += [True] * len(plan.term_colnames[expr])
    times = " (times the square root of the weights)" if weighted else ""
    for w, a, u in zip(what, scale, use, strict=True):
        if not u or a == 0.0:
            continue
        if a * np.sqrt(n) > _MAX_SCALE or a < _MIN_SCALE:
            size = "large" if a > 1.0 else "small"
            raise DataError(f"{w}{times} has values too {size} to fit (largest |value| "
                            f"{a:.3g}; cross-products need magnitudes between "
                            f"{_MIN_SCALE:g} and {_MAX_SCALE:g}): rescale it")


def _lm_loglik(b, reml: bool) -> tuple[float, int]:
    """(REML) log-likelihood of the linear model of the fixed part, from the blocks.

    R's ``logLik(lm(...), REML = reml)`` with the prior weights, as
    :func:`mixeff._compare.lm_loglik` computes it from the rows.
    """
    import scipy.linalg

    n, p = b.n, b.p
    sh = getattr(b, "shift", None)
    Xty, yty = (b.Xty, b.yty) if sh is None else (sh.Xty, sh.yty)   # same model, precise
    if p:
        R = scipy.linalg.cholesky(b.XtX, lower=False)
        c = scipy.linalg.solve_triangular(R, Xty, trans="T")
        rss = float(yty - c @ c)
        logdet = 2.0 * float(np.sum(np.log(np.abs(np.diag(R)))))
    else:
        rss, logdet = float(yty), 0.0
    nn = n - p if reml else n
    ll = 0.5 * (b.sum_log_w - nn * (np.log(2.0 * np.pi) + 1.0 - np.log(nn) + np.log(rss)))
    if reml:
        ll -= 0.5 * logdet
    return float(ll), p + 1


def _subfit(fit, new_design, keep_cols: dict, dropped: int | None):
    """Fit a model whose random terms are some of ``fit``'s (or some of their columns).

    Its blocks are selections of ``fit``'s blocks: no pass over the rows.
    """
    from ._api import choose_optimizer
    from ._blocks import assemble_blocks
    from ._fit import LmerFit
    from ._lambda import ReStructure, lme4_term_order
    from ._objective import LmmObjective
    from ._optimizer import minimize_theta, scaled_start

    b = fit.blocks
    old = fit.structure.terms
    # formula index -> (old storage index, columns kept)
    sel = []
    for f in range(len(fit.design.terms)):
        if f == dropped:
            continue
        ot = fit.term_order.index(f)
        cols = keep_cols.get(f) or list(range(old[ot].k))
        sel.append((ot, np.asarray(cols, dtype=np.int64)))
    order = lme4_term_order([old[ot].nlevels for ot, _ in sel])
    new = [sel[i] for i in order]
    newpos = {ot: j for j, (ot, _) in enumerate(new)}
    re = ReStructure([old[ot].label for ot, _ in new],
                     [[old[ot].colnames[c] for c in cols] for ot, cols in new],
                     [old[ot].nlevels for ot, _ in new])

    def values(mask, kr, kc):
        vo = b.blk_vo[mask]
        return b.vals[vo[:, None] + np.arange(kr * kc)].reshape(vo.size, kr, kc)

    diag = []
    for ot, cols in new:
        k = old[ot].k
        v = values((b.blk_rt == ot) & b.blk_diag, k, k)
        diag.append(v[:, cols][:, :, cols])
    pairs = {}
    for ota, ca in new:
        for otc, cc in new:
            if ota <= otc:
                continue   # old blocks hold pairs (row term > column term) only
            mask = (b.blk_rt == ota) & (b.blk_ct == otc) & ~b.blk_diag
            v = values(mask, old[ota].k, old[otc].k)[:, ca][:, :, cc]
            rl, cl = b.blk_rl[mask], b.blk_cl[mask]
            if newpos[ota] > newpos[otc]:
                keys = rl * old[otc].nlevels + cl
                key = (newpos[ota], newpos[otc])
            else:
                keys = cl * old[ota].nlevels + rl
                v = v.transpose(0, 2, 1)
                key = (newpos[otc], newpos[ota])
            srt = np.argsort(keys, kind="stable")
            pairs[key] = (keys[srt], np.ascontiguousarray(v[srt]))
    p = b.p

    def rows_of(M: np.ndarray) -> np.ndarray:
        c = M.shape[1]
        return np.vstack([M[old[ot].offset : old[ot].offset + old[ot].size]
                          .reshape(old[ot].nlevels, old[ot].k, c)[:, cols].reshape(-1, c)
                          for ot, cols in new])

    ZtXY = rows_of(np.column_stack([b.ZtX, b.Zty]))
    XYtXY = np.empty((p + 1, p + 1))
    XYtXY[:p, :p] = b.XtX
    XYtXY[:p, p] = XYtXY[p, :p] = b.Xty
    XYtXY[p, p] = b.yty
    blocks = assemble_blocks(re, diag, pairs, ZtXY, XYtXY, b.n, b.sum_log_w)
    sh = getattr(b, "shift", None)
    if sh is not None:
        from ._blocks import ResponseShift

        blocks.shift = ResponseShift(beta0=sh.beta0, Zty=rows_of(sh.Zty[:, None]).ravel(),
                                     Xty=sh.Xty, yty=sh.yty)
    obj = LmmObjective(blocks, reml=fit.reml)
    method = choose_optimizer(obj)
    optsum = minimize_theta(obj, **scaled_start(blocks, method=method),   # as fit_design
                            method=method)
    # design.terms in formula order; the fit's storage order maps onto them
    fterms = [f for f in range(len(fit.design.terms)) if f != dropped]
    term_order = [fterms.index(fit.term_order[ot]) for ot, _ in new]
    return LmerFit(design=new_design, structure=re, blocks=blocks, objective_fn=obj,
                   optsum=optsum, term_order=term_order)


def _standin_x(R: np.ndarray, xsum: np.ndarray, n: int) -> np.ndarray:
    """A ``(p + 1) x p`` matrix standing in for ``X`` in the contrasts of ``anova()``.

    The Type I-III contrasts see ``X`` only through the ``R`` of its QR and through
    ``Q'1`` (the constant in the coordinates of ``X``), both unchanged when everything
    is scaled alike. The stand-in ``S = c Q~ R`` with ``c = sqrt((p + 1) / n)`` and an
    orthonormal ``Q~`` whose column sums are ``c Q'1 = c R^-T X'1`` has ``S'S = c^2 X'X``
    and gives the same contrasts.
    """
    import scipy.linalg

    p = R.shape[1]
    if p == 0:
        return np.zeros((1, 0), order="F")
    Rk = scipy.linalg.qr(R, mode="r", check_finite=False)[0][:p]
    v = scipy.linalg.solve_triangular(Rk, xsum, trans="T")       # Q'1
    m = p + 1
    c = np.sqrt(m / n)
    a = v / np.sqrt(n)                                            # Q~'u, |a| <= 1
    u = np.full(m, 1.0 / np.sqrt(m))
    W = np.linalg.qr(np.column_stack([u, np.eye(m)[:, :p]]))[0][:, 1:m]  # basis of u-perp
    lam, V = np.linalg.eigh(np.eye(p) - np.outer(a, a))
    B = (V * np.sqrt(np.clip(lam, 0.0, None))) @ V.T
    Qt = np.outer(u, a) + W @ B
    return np.asfortranarray(Qt @ (c * Rk))


# --------------------------------------------------------------------------------------
# rows back: fitted values, residuals, augment (Dask collections)
# --------------------------------------------------------------------------------------


def _influence(fit) -> dict:
    """What the hat values need besides the rows (as :func:`mixeff._tidy.hat_values`).

    ``M^{-1}`` on every level pair of ``Z'Z`` (a row's pairs are always among them) and
    ``G = L^-T R_ZX`` per term, from the factor at the estimate; ``R_X``.
    """
    obj = fit._obj
    b = fit.blocks
    terms = fit.structure.terms
    sel = obj.selected_inverse(fit.theta)
    pairs = {}
    for s, ts in enumerate(terms):
        for t in range(s + 1):
            tt = terms[t]
            if s == t:
                lv = np.arange(ts.nlevels, dtype=np.int64)
                keys = lv * tt.nlevels + lv
            else:
                mask = (b.blk_rt == s) & (b.blk_ct == t) & ~b.blk_diag
                keys = np.sort(b.blk_rl[mask] * tt.nlevels + b.blk_cl[mask])
            ls, lt = keys // tt.nlevels, keys % tt.nlevels
            i = np.arange(ts.k)[None, :, None]
            j = np.arange(tt.k)[None, None, :]
            gr = ts.offset + ls[:, None, None] * ts.k + i + 0 * j
            gc = tt.offset + lt[:, None, None] * tt.k + j + 0 * i
            vals = sel.entries(gr.ravel(), gc.ravel()).reshape(keys.size, ts.k, tt.k)
            pairs[(s, t)] = (keys, vals)
    p = b.p
    G = []
    if p:
        obj.solve(fit.theta)
        Gp = obj._chol.solve_Lt(fit._sol.RZX)
        Gfull = np.empty_like(Gp)
        Gfull[obj.perm] = Gp
        G = [Gfull[t.offset : t.offset + t.size].reshape(t.nlevels, t.k, p) for t in terms]
    return {"pairs": pairs, "G": G, "RX": np.asarray(fit._sol.RX, dtype=np.float64)}


def _hat(r: _Rows, ctx: dict, A: list[np.ndarray], codes: list[np.ndarray]) -> np.ndarray:
    import scipy.linalg

    infl = ctx["influence"]
    plan = ctx["plan"]
    n = r.y.shape[0]
    quad = np.zeros(n)
    for (s, t), (keys, vals) in infl["pairs"].items():
        idx = np.searchsorted(keys, codes[s] * plan.nlev[t] + codes[t])
        qf = np.einsum("ni,nij,nj->n", A[s], vals[idx], A[t])
        quad += qf if s == t else 2.0 * qf
    if infl["G"]:
        rr = np.array(r.X[:, ctx["keep"]], dtype=np.float64, order="C")
        for ti, Gt in enumerate(infl["G"]):
            rr -= np.einsum("nk,nkp->np", A[ti], Gt[codes[ti]])
        cr = scipy.linalg.solve_triangular(infl["RX"], rr.T, trans="T")
        quad += np.einsum("pn,pn->n", cr, cr)
    return quad if r.w is None else quad * r.w


def _predict_chunk(df: pd.DataFrame, ctx: dict, what: str) -> pd.DataFrame | pd.Series:
    from . import _kernels as K

    plan = ctx["plan"]
    r = _evaluate_rows(df, plan)
    n = r.y.shape[0]
    beta = ctx["beta"]
    fixed = r.X[:, ctx["keep"]] @ beta if beta.size else np.zeros(n)
    eta = fixed.copy()
    codes, A = [], []
    for ti, si in enumerate(plan.order):
        t = plan.pf.random[si]
        Z = np.ascontiguousarray(r.mats[t.expr])
        codes.append(r.codes[t.label])
        eta += K.term_linear_predictor(codes[-1], Z, ctx["b"][ti])
        if ctx.get("influence") is not None:
            k = Z.shape[1]
            A.append(Z @ ctx["tmpl"][ti, :k, :k])
    off = np.zeros(n) if r.offset is None else r.offset
    fixed = fixed + off
    mu = eta + off
    w = np.ones(n) if r.w is None else r.w
    resid = r.y - mu
    index = df.index[r.pos]
    if what == "fitted":
        return pd.Series(mu, index=index, name="fitted")
    if what.startswith("residuals"):
        _, typ, scaled = what.split(":")
        res = resid * np.sqrt(w) if typ == "pearson" else resid
        if scaled == "1":
            res = res / ctx["sigma"]
        return pd.Series(res, index=index, name="residuals")
    cols: dict[str, np.ndarray] = {".fitted": mu, ".resid": resid}
    if ctx.get("influence") is not None:
        h = _hat(r, ctx, A, codes)
        if what == "hat":
            return pd.Series(h, index=index, name="hat")
        with np.errstate(divide="ignore", invalid="ignore"):
            cd = (resid * np.sqrt(w) / (1.0 - h)) ** 2 * h / (ctx["sigma"] ** 2 * beta.size)
        cd[np.isinf(cd)] = np.nan
        if what == "cooksd":
            return pd.Series(cd, index=index, name="cooksd")
        cols.update({".hat": h, ".cooksd": cd})
    out = df.iloc[r.pos].copy()
    cols.update({".fixed": fixed, ".mu": mu, ".offset": off, ".sqrtXwt": np.sqrt(w),
                 ".sqrtrwt": np.sqrt(w), ".weights": w, ".wtres": np.sqrt(w) * resid})
    for k, v in cols.items():
        out[k] = v
    return out


@dataclass
class DaskFitInfo:
    """What a fit from Dask data keeps to bring rows back, partition by partition."""

    ddf: Any
    plan: _Plan
    keep: np.ndarray
    weighted: bool

    def _map(self, fit, what: str, meta, influence: bool = False):
        import dask

        nt = len(fit.structure.terms)
        ctx = {"plan": self.plan, "keep": self.keep,
               "beta": np.asarray(fit._sol.beta, dtype=np.float64),
               "b": [np.ascontiguousarray(fit._term_b(ti)) for ti in range(nt)],
               "sigma": float(fit.sigma), "tmpl": fit.structure.templates(fit.theta),
               "influence": _influence(fit) if influence else None}
        # one copy of the context in the graph, shared by the partitions' tasks
        return self.ddf.map_partitions(_predict_chunk, dask.delayed(ctx, traverse=False),
                                       what, meta=meta)

    def fitted(self, fit):
        """Fitted values as a Dask Series (index of the used rows)."""
        return self._map(fit, "fitted", pd.Series(dtype=np.float64, name="fitted"))

    def residuals(self, fit, type: str = "response", scaled: bool = False):
        """Residuals as a Dask Series."""
        if type not in ("response", "pearson"):
            raise ValueError("type must be 'response' or 'pearson'")
        return self._map(fit, f"residuals:{type}:{int(bool(scaled))}",
                         pd.Series(dtype=np.float64, name="residuals"))

    def hatvalues(self, fit):
        """Hat values (lme4's ``hatvalues``) as a Dask Series."""
        return self._map(fit, "hat", pd.Series(dtype=np.float64, name="hat"), True)

    def cooks_distance(self, fit):
        """Cook's distances (lme4's ``cooks.distance``) as a Dask Series."""
        return self._map(fit, "cooksd", pd.Series(dtype=np.float64, name="cooksd"), True)

    def residual_quantiles(self, fit, probs=(0.0, 0.25, 0.5, 0.75, 1.0),
                           nbins: int = 1 << 16) -> np.ndarray:
        """R's type-7 quantiles of the scaled Pearson residuals, exactly, without the rows.

        Three passes over the partitions: minimum, maximum and count; a histogram; then
        only the values in the bins that hold the order statistics needed.
        """
        import math

        import dask

        r = self.residuals(fit, "pearson", True)
        lo, hi, n = dask.compute(r.min(), r.max(), r.count())
        n = int(n)
        if n == 0:
            return np.full(len(probs), np.nan)
        ranks = {}
        for p in probs:
            index = (n - 1) * p
            ranks[p] = (index, math.floor(index), math.ceil(index))
        need = sorted({k for _, a, b in ranks.values() for k in (a, b)})
        if hi > lo:
            parts = r.to_delayed()
            width = (hi - lo) / nbins

            def binned(x: pd.Series) -> np.ndarray:
                return np.clip(((x.to_numpy() - lo) / width).astype(np.int64), 0, nbins - 1)

            def hist(x):
                return np.bincount(binned(x), minlength=nbins)

            counts = sum(dask.compute(*[dask.delayed(hist)(q) for q in parts]))
            cum = np.cumsum(counts)
            bins = np.unique(np.searchsorted(cum, np.asarray(need), side="right"))

            def pick(x):
                v = x.to_numpy()
                return v[np.isin(binned(x), bins)]

            vals = np.sort(np.concatenate(dask.compute(*[dask.delayed(pick)(q)
                                                         for q in parts])))
            start = np.concatenate([[0], cum])[bins]   # rank of each bin's first value
            offs = np.concatenate([[0], np.cumsum(counts[bins])])
            order = {}
            for k in need:
                j = int(np.searchsorted(bins, np.searchsorted(cum, k, side="right")))
                order[k] = vals[offs[j] + (k - start[j])]
        else:
            order = {k: lo for k in need}
        out = []
        for p in probs:
            index, a, b = ranks[p]
            q = order[a]
            if index > a and order[b] != q:
                h = index - a
                q = (1 - h) * q + h * order[b]
            out.append(q)
        return np.array(out, dtype=np.float64)

    def augment(self, fit, influence: bool = True):
        """The data with ``.fitted``, ``.resid``, ... as a Dask DataFrame."""
        meta = self.ddf._meta.copy()
        names = [".fitted", ".resid"] + ([".hat", ".cooksd"] if influence else [])
        for k in names + [".fixed", ".mu", ".offset", ".sqrtXwt", ".sqrtrwt", ".weights",
                          ".wtres"]:
            meta[k] = pd.Series(dtype=np.float64)
        return self._map(fit, "augment", meta, influence)

    def ranova(self, fit, reduce_terms: bool = True) -> pd.DataFrame:
        """lmerTest's ``ranova`` for a fit from Dask data (see :func:`mixeff._compare.ranova`).

        Terms removed or reduced to some of their columns are refitted from the fit's
        blocks (no pass over the data); a term reduced to a random intercept it did not
        have (``(0 + x | g)`` -> ``(1 | g)``) needs new sums: that reduced model is fitted
        from the partitions again, on the same rows.
        """

        from ._compare import _loglik, _reduced_design, _reductions, ranova_table

        design = fit.design
        rows = [("<none>", int(fit.npar), _loglik(fit))]
        formulae: dict[str, str] = {}
        for red in _reductions(design, reduce_terms):
            new_design, text = _reduced_design(design, red)
            formulae[red.label] = text
            if not new_design.terms:
                ll, npar = _lm_loglik(fit.blocks, fit.reml)
                rows.append((red.label, npar, ll))
                continue
            present = len(new_design.terms) == len(design.terms)
            if red.intercept_only and present:
                sub = lmer_dask(text, self.ddf, fit.reml, self.plan.weights_col,
                                self.plan.offset_col, extra_used=tuple(self.plan.used))
                if sub.nobs != fit.nobs:
                    raise DataError(f"the reduced model {text!r} uses {sub.nobs} rows, the "
                                    f"model {fit.nobs}: evaluating its formula drops other "
                                    "rows; remove the rows with missing values first")
            else:
                keep_cols = {} if not present else {red.index: red.keep_columns}
                dropped = None if present else red.index
                sub = _subfit(fit, new_design, keep_cols, dropped)
            rows.append((red.label, int(sub.npar), _loglik(sub)))
        return ranova_table(rows, fit.formula, formulae)

    def check_kenward_roger(self) -> None:
        """Kenward-Roger needs pbkrtest's unweighted cross-products for a weighted fit."""
        if self.weighted:
            raise NotImplementedError(
                "Kenward-Roger df for a weighted fit from Dask data: pbkrtest's unweighted "
                "cross-products are not computed from the partitions; use "
                "ddf='Satterthwaite'")

    @staticmethod
    def unavailable(what: str):
        hint = ("fit the reduced models with mixeff.lmer on the same Dask data and compare "
                "them with mixeff.anova(m0, m1)" if what.startswith("ranova") else
                "fitted(), residuals() and augment() return Dask collections, "
                "predict(newdata) takes a pandas DataFrame")
        raise NotImplementedError(f"{what}: not available for a fit from Dask data (the rows "
                                  f"stay in the partitions); {hint}")
