"""Contrast codings of categorical columns as R chooses them, and the package options.

R codes an unordered factor with ``getOption("contrasts")[1]`` (``contr.treatment``) and
an ordered factor with ``getOption("contrasts")[2]`` (``contr.poly``), unless
``contrasts = list(x = ...)`` is given to ``lm``/``lmer``. formulaic always uses treatment
contrasts for a plain column; this module decides each column's coding and writes the
column as ``C(x, contr.sum)`` in the fixed part that formulaic evaluates
(:func:`rewrite_fixed`), so the model spec carries the coding to new data, and
formulaic's names read ``C(recipe, contr.sum)[S.A]``, ``C(temperature, contr.poly)[.L]``.
:func:`r_names` gives R's names of the columns (``recipe1``, ``temperature.L``,
``week:temp15``, ``poly(Days, 2)1``).

Package options (:func:`set_options`, :func:`get_options`): ``contrasts`` (as R's
``options(contrasts = )``) and ``names`` (``"formulaic"`` or ``"R"``: the default of the
``names=`` argument of :func:`~mixeff.lmer` and :func:`~mixeff.lm`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from ._errors import DataError

__all__ = ["R_CONTRASTS", "codings", "get_options", "r_names", "rewrite_fixed",
           "r_term_label", "set_options"]

R_CONTRASTS = ("contr.treatment", "contr.sum", "contr.helmert", "contr.poly", "contr.SAS")
_NAMES = ("formulaic", "R")
_DEFAULTS: dict[str, Any] = {"contrasts": ("contr.treatment", "contr.poly"),
                             "names": "formulaic"}
_OPTIONS: dict[str, Any] = dict(_DEFAULTS)


def _check_contrast(value: Any, what: str) -> str:
    if isinstance(value, str) and value in R_CONTRASTS:
        return value
    raise DataError(f"{what} must be one of {', '.join(R_CONTRASTS)}, not {value!r}")


def set_options(*, contrasts: tuple[str, str] | list[str] | None = None,
                names: str | None = None) -> dict[str, Any]:
    """Set package-wide defaults, as R's ``options(contrasts = )``.

    Parameters
    ----------
    contrasts
        Two R contrast names ``(unordered, ordered)``: the codings of unordered and
        ordered categorical columns that ``contrasts=`` does not name, e.g.
        ``("contr.sum", "contr.poly")``. R's default is
        ``("contr.treatment", "contr.poly")``.
    names
        ``"formulaic"`` (default) or ``"R"``: the default of the ``names=`` argument of
        :func:`~mixeff.lmer` and :func:`~mixeff.lm`.

    Returns
    -------
    dict
        The previous options (pass them back as ``set_options(**old)`` to restore).
    """
    old = get_options()
    if contrasts is not None:
        if isinstance(contrasts, str) or len(contrasts) != 2:
            raise DataError("contrasts must be two names (unordered, ordered), e.g. "
                            "('contr.treatment', 'contr.poly')")
        pair = tuple(_check_contrast(c, "each of contrasts") for c in contrasts)
        _OPTIONS["contrasts"] = pair
    if names is not None:
        _OPTIONS["names"] = _check_names(names)
    return old


def get_options() -> dict[str, Any]:
    """The package-wide options (see :func:`set_options`)."""
    return dict(_OPTIONS)


def reset_options() -> None:
    """Restore R's defaults (treatment / polynomial contrasts, formulaic's names)."""
    _OPTIONS.clear()
    _OPTIONS.update(_DEFAULTS)


def _check_names(names: str | None) -> str:
    if names is None:
        return _OPTIONS["names"]
    for ok in _NAMES:
        if str(names).lower() == ok.lower():
            return ok
    raise DataError(f"names must be 'formulaic' or 'R', not {names!r}")


def resolve_names(names: str | None) -> str:
    """The ``names=`` argument, None meaning the package option."""
    return _check_names(names)


def codings(frame: Mapping[str, Any], contrasts: Mapping[str, Any] | None,
            used: list[str] | None = None) -> dict[str, str]:
    """The coding of each categorical column that formulaic would not code by default.

    Parameters
    ----------
    frame
        The columns as :func:`~mixeff._design._for_formulaic` gives them.
    contrasts
        The ``contrasts=`` argument: column -> R contrast name.
    used
        Columns of the fixed part (a ``contrasts=`` key naming another column is
        ignored with a warning, as R does).

    Returns
    -------
    dict
        Column -> R contrast name, for the categorical columns not coded by formulaic's
        own default (treatment contrasts, first level as reference).
    """
    if contrasts is not None and not isinstance(contrasts, Mapping):
        raise DataError("contrasts must be a dict {column: contrast name}, e.g. "
                        "{'recipe': 'contr.sum'}")
    given = dict(contrasts or {})
    for col, spec in list(given.items()):
        _check_contrast(spec, f"contrasts[{col!r}]")
        if col not in frame or (used is not None and col not in used):
            # R: "variable 'x' is absent, its contrast will be ignored" (e.g. after update)
            import warnings

            warnings.warn(f"contrasts= names {col!r}, which is not a variable of the "
                          "fixed-effects part: its contrast is ignored", UserWarning,
                          stacklevel=4)
            del given[col]
            continue
        if not _is_categorical(frame[col]):
            raise DataError(f"contrasts= names {col!r}, which is not categorical "
                            "(numbers are not coded by contrasts; use C(x) for a factor)")
    unordered, ordered = _OPTIONS["contrasts"]
    out: dict[str, str] = {}
    for col, values in frame.items():
        if (used is not None and col not in used) or not _is_categorical(values):
            continue
        spec = given.get(col, ordered if _is_ordered(values) else unordered)
        if spec != "contr.treatment":  # formulaic's own default
            out[col] = spec
    return out


def _is_categorical(values: Any) -> bool:
    return isinstance(values, pd.Categorical) or isinstance(
        getattr(values, "dtype", None), pd.CategoricalDtype)


def _is_ordered(values: Any) -> bool:
    dtype = getattr(values, "dtype", None)
    return isinstance(dtype, pd.CategoricalDtype) and bool(dtype.ordered)


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def rewrite_fixed(fixed: str, coding: Mapping[str, str]) -> str:
    """The fixed part with each coded column, where it stands as a factor, as
    ``C(x, contr.sum)``.

    A column stands as a factor when it is a name at the top level of the formula
    (also inside grouping parentheses such as ``(a + b):c``), not inside a call
    (``C(x)``, ``I(x == 1)``: an explicit coding wins), braces or quotes. Backtick-quoted
    names count too.
    """
    out: list[str] = []
    stack: list[bool] = []  # per open parenthesis: True for a call's, False for grouping
    i, n = 0, len(fixed)
    while i < n:
        ch = fixed[i]
        if ch in "\"'":
            j = fixed.find(ch, i + 1)
            j = n - 1 if j < 0 else j
            out.append(fixed[i:j + 1])
            i = j + 1
            continue
        if ch == "{":
            depth, j = 0, i
            while j < n:
                depth += fixed[j] == "{"
                depth -= fixed[j] == "}"
                if depth == 0:
                    break
                j += 1
            out.append(fixed[i:j + 1])
            i = j + 1
            continue
        if ch == "`":
            j = fixed.find("`", i + 1)
            j = n - 1 if j < 0 else j
            name = fixed[i + 1:j]
            tok = fixed[i:j + 1]
            out.append(_wrapped(tok, name, coding) if not any(stack) else tok)
            i = j + 1
            continue
        m = _IDENT.match(fixed, i)
        if m and (i == 0 or not (fixed[i - 1].isalnum() or fixed[i - 1] in "_.")):
            tok = m.group(0)
            j = m.end()
            k = j
            while k < n and fixed[k] == " ":
                k += 1
            is_call = k < n and fixed[k] == "("
            if is_call:
                out.append(fixed[i:k + 1])
                stack.append(True)
                i = k + 1
                continue
            out.append(_wrapped(tok, tok, coding) if not any(stack) else tok)
            i = j
            continue
        if ch == "(":
            stack.append(False)
        elif ch == ")" and stack:
            stack.pop()
        out.append(ch)
        i += 1
    return "".join(out)


def _wrapped(token: str, name: str, coding: Mapping[str, str]) -> str:
    spec = coding.get(name)
    return token if spec is None else f"C({token}, {spec})"


# --------------------------------------------------------------------------------------
# R's names
# --------------------------------------------------------------------------------------

_C_CALL = re.compile(r"^C\(\s*([^,()]+?)\s*(?:,.*)?\)$")


_POWER = re.compile(r"\s*\*\*\s*")


def _r_variable(expr: str) -> str:
    """R's name of a factor expression: ``C(x)`` / ``C(x, Sum)`` -> ``x``, and a power
    ``I(Days ** 2)`` as R deparses it, ``I(Days^2)``."""
    m = _C_CALL.match(expr)
    return m.group(1).strip("` ") if m else _POWER.sub("^", expr)


def r_term_label(label: str) -> str:
    """R's label of a formulaic term (``week:C(temp)`` -> ``week:temp``)."""
    if label in ("1", "Intercept"):
        return "(Intercept)"
    return ":".join(_r_variable(p) for p in _split_term(label))


def _split_term(label: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in label:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == ":" and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def _categorical_piece(expr: str, field: str, con: Any, levels: list, reduced: bool
                       ) -> str:
    from formulaic.transforms.contrasts import HelmertContrasts, SumContrasts

    var = _r_variable(expr)
    if reduced and isinstance(con, SumContrasts | HelmertContrasts):
        lev = [str(v) for v in levels]
        k = lev.index(str(field))
        return f"{var}{k + 1 if isinstance(con, SumContrasts) else k}"
    return f"{var}{field}"


_NUMERIC_PIECE = re.compile(r"^(.*)\[([^\[\]]*)\]$")


def r_names(spec: Any, names: list[str]) -> list[str]:
    """R's names of the columns ``names`` made by a formulaic ``ModelSpec``.

    Parameters
    ----------
    spec
        formulaic ``ModelSpec`` of the fixed part.
    names
        Column names to translate (formulaic's, ``"(Intercept)"`` for the intercept).

    Returns
    -------
    list of str
        ``recipeB`` (treatment), ``recipe1`` (sum, Helmert: the column number),
        ``temperature.L`` (polynomial), ``week:temp15``, ``poly(Days, 2)1``; a name the
        spec did not make is returned unchanged.
    """
    if spec is None:
        return list(names)
    table: dict[str, str] = {"Intercept": "(Intercept)", "(Intercept)": "(Intercept)"}
    state = spec.encoder_state or {}
    for es in spec.structure:
        for st in es.scoped_terms:
            per: list[list[tuple[str, str]]] = []
            for sf in st.factors:
                expr = sf.factor.expr
                kind, st_ = state.get(expr, (None, {}))
                if getattr(kind, "value", str(kind)) == "categorical":
                    cs = st_.get("contrasts")
                    if cs is None:
                        from formulaic.transforms.contrasts import TreatmentContrasts

                        con, lev = TreatmentContrasts(), list(st_.get("categories", []))
                    else:
                        con, lev = cs.contrasts, list(cs.levels)
                    red = bool(sf.reduced)
                    cn = list(con.get_coding_column_names(lev, reduced_rank=red))
                    fmt = con.get_factor_format(lev, reduced_rank=red)
                    per.append([(fmt.format(name=expr, field=c),
                                 _categorical_piece(expr, c, con, lev, red)) for c in cn])
                else:
                    pieces = _numeric_pieces(spec, expr)
                    per.append([(p, _numeric_r_name(p)) for p in pieces])
            for rev in itertools.product(*reversed(per)):
                combo = rev[::-1]
                if not combo:
                    continue
                table[":".join(c[0] for c in combo)] = ":".join(c[1] for c in combo)
    return [table.get(nm, nm) for nm in names]


def _numeric_pieces(spec: Any, expr: str) -> list[str]:
    for es in spec.structure:
        if tuple(f.expr for f in es.term.factors) == (expr,):
            return [str(c) for c in es.columns]
    return [expr]


def _numeric_r_name(piece: str) -> str:
    """``poly(Days, 2)[1]`` -> ``poly(Days, 2)1``; a plain column stays as it is."""
    m = _NUMERIC_PIECE.match(piece)
    if m and m.group(1).endswith(")"):
        return _POWER.sub("^", m.group(1)) + m.group(2)
    return _POWER.sub("^", piece)


def r_name_map(spec: Any, names: list[str]) -> dict[str, str]:
    """``{formulaic name: R name}`` for ``names`` (see :func:`r_names`)."""
    return dict(zip(names, r_names(spec, names), strict=True))
