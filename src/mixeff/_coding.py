"""Contrast codings of categorical columns as R chooses them, and the package options.

R codes an unordered factor with ``getOption("contrasts")[1]`` (``contr.treatment``) and
an ordered factor with ``getOption("contrasts")[2]`` (``contr.poly``), unless
``contrasts = list(x = ...)`` is given to ``lm``/``lmer``. formulaic always uses treatment
contrasts for a plain column; this module decides each column's coding and hands it to
formulaic as the contrasts of a ``C()`` wrapper placed in the evaluation context (the
column's name then stays the factor's name, so terms and coefficients keep formulaic's
names: ``recipe[S.A]``, ``temperature[.L]``). :func:`r_names` gives R's names of the
columns (``recipe1``, ``temperature.L``, ``week:temp15``, ``poly(Days, 2)1``).

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

__all__ = ["R_CONTRASTS", "codings", "coded_frame", "get_options", "r_names",
           "r_term_label", "set_options"]

R_CONTRASTS = ("contr.treatment", "contr.sum", "contr.helmert", "contr.poly", "contr.SAS")
_NAMES = ("formulaic", "R")
_DEFAULTS: dict[str, Any] = {"contrasts": ("contr.treatment", "contr.poly"),
                             "names": "formulaic"}
_OPTIONS: dict[str, Any] = dict(_DEFAULTS)


def _check_contrast(value: Any, what: str) -> Any:
    if isinstance(value, str):
        if value not in R_CONTRASTS:
            raise DataError(f"{what} must be one of {', '.join(R_CONTRASTS)} (or a formulaic "
                            f"Contrasts object), not {value!r}")
        return value
    from formulaic.transforms.contrasts import Contrasts

    if isinstance(value, type) and issubclass(value, Contrasts):
        return value()
    if isinstance(value, Contrasts):
        return value
    raise DataError(f"{what} must be one of {', '.join(R_CONTRASTS)} (or a formulaic "
                    f"Contrasts object), not {value!r}")


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


def _levels(values: Any) -> list:
    cat = values if isinstance(values, pd.Categorical) else pd.Categorical(values)
    return list(cat.categories)


def _contrasts_object(spec: Any, levels: list) -> Any:
    """A formulaic ``Contrasts`` for an R contrast name (or the object itself)."""
    from formulaic.transforms.contrasts import (
        HelmertContrasts,
        PolyContrasts,
        SumContrasts,
        TreatmentContrasts,
    )

    if not isinstance(spec, str):
        return spec
    if spec == "contr.treatment":
        return TreatmentContrasts()
    if spec == "contr.SAS":
        return TreatmentContrasts(base=levels[-1]) if levels else TreatmentContrasts()
    if spec == "contr.sum":
        return SumContrasts()
    if spec == "contr.helmert":
        return HelmertContrasts()
    return PolyContrasts()


def codings(frame: Mapping[str, Any], contrasts: Mapping[str, Any] | None,
            used: list[str] | None = None) -> dict[str, Any]:
    """The coding of each categorical column that formulaic would not code by default.

    Parameters
    ----------
    frame
        The columns as :func:`~mixeff._design._for_formulaic` gives them.
    contrasts
        The ``contrasts=`` argument: column -> R contrast name or formulaic Contrasts.
    used
        Columns of the fixed part (the ``contrasts=`` keys must be among them).

    Returns
    -------
    dict
        Column -> formulaic ``Contrasts`` object, for the columns not coded by
        formulaic's own default (treatment contrasts, first level as reference).
    """
    from formulaic.transforms.contrasts import TreatmentContrasts

    given = dict(contrasts or {})
    if contrasts is not None and not isinstance(contrasts, Mapping):
        raise DataError("contrasts must be a dict {column: contrast name}, e.g. "
                        "{'recipe': 'contr.sum'}")
    out: dict[str, Any] = {}
    for col, spec in given.items():
        _check_contrast(spec, f"contrasts[{col!r}]")
        if col not in frame or (used is not None and col not in used):
            # R: "variable 'x' is absent, its contrast will be ignored" (e.g. after update)
            import warnings

            warnings.warn(f"contrasts= names {col!r}, which is not a variable of the "
                          "fixed-effects part: its contrast is ignored", UserWarning,
                          stacklevel=4)
            continue
        if not _is_categorical(frame[col]):
            raise DataError(f"contrasts= names {col!r}, which is not categorical "
                            "(numbers are not coded by contrasts; use C(x) for a factor)")
    unordered, ordered = _OPTIONS["contrasts"]
    for col, values in frame.items():
        if used is not None and col not in used:
            continue
        if not _is_categorical(values):
            continue
        if col in given and col in frame:
            spec = _check_contrast(given[col], f"contrasts[{col!r}]")
        else:
            spec = ordered if _is_ordered(values) else unordered
        obj = _contrasts_object(spec, _levels(values))
        if type(obj) is TreatmentContrasts and _base_is_first(obj):
            continue  # formulaic's own default
        out[col] = obj
    return out


def _base_is_first(obj: Any) -> bool:
    from formulaic.utils.sentinels import UNSET

    return obj.base is UNSET


def _is_categorical(values: Any) -> bool:
    return isinstance(values, pd.Categorical) or isinstance(
        getattr(values, "dtype", None), pd.CategoricalDtype)


def _is_ordered(values: Any) -> bool:
    dtype = getattr(values, "dtype", None)
    return isinstance(dtype, pd.CategoricalDtype) and bool(dtype.ordered)


def coded_frame(frame: pd.DataFrame, coding: Mapping[str, Any]
                ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``frame`` without the coded columns, and a context holding them as ``C(x, coding)``."""
    if not coding:
        return frame, {}
    from formulaic.transforms.contrasts import C

    context: dict[str, Any] = {}
    for col, obj in coding.items():
        if col in frame.columns:
            values = frame[col]
            if not isinstance(values.dtype, pd.CategoricalDtype):
                values = pd.Categorical(values)
            context[col] = C(values.array if isinstance(values, pd.Series) else values,
                             contrasts=obj)
    rest = frame.drop(columns=[c for c in context], errors="ignore")
    return rest, context


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
