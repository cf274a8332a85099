"""ANOVA tables of the fixed-effect terms of a mixed model, as lmerTest's ``anova(m)``.

Each term is tested with the F test of its contrast matrix (:mod:`._contrasts`: lmerTest's
Type I, II or III matrices) through :meth:`~mixeff._fit.LmerFit.contest`, with
Satterthwaite's or Kenward-Roger's denominator df. ``ddf="lme4"`` gives lme4's own table
(sequential sums of squares from ``R_X beta``, no df, no p values).

:func:`format_anova` prints any of these tables (and :mod:`._lm`'s) as R's
``print.anova``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from ._fit import LmerFit

__all__ = ["ANOVA_COLUMNS", "LME4_COLUMNS", "anova_table", "format_anova"]

ANOVA_COLUMNS = ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]
LME4_COLUMNS = ["npar", "Sum Sq", "Mean Sq", "F value"]

_TYPES = {"1": 1, "2": 2, "3": 3, "I": 1, "II": 2, "III": 3}
_ROMAN = {1: "I", 2: "II", 3: "III"}
_DDF = {"satterthwaite": "Satterthwaite", "kenward-roger": "Kenward-Roger",
        "kr": "Kenward-Roger", "lme4": "lme4"}


def _match_type(type: int | str) -> int:
    key = str(type).strip()
    if key.lower().startswith("type"):
        key = key[4:].strip()
    if key.upper() in _TYPES:
        return _TYPES[key.upper()]
    raise ValueError(f"type must be 1, 2 or 3 (or 'I', 'II', 'III'), not {type!r}")


def _match_ddf(ddf: str) -> str:
    key = str(ddf).strip().lower()
    hits = {v for k, v in _DDF.items() if k.startswith(key)} if key else set()
    if len(hits) != 1:
        raise ValueError("ddf must be 'Satterthwaite', 'Kenward-Roger' or 'lme4', "
                         f"not {ddf!r}")
    return hits.pop()


def anova_table(fit: LmerFit, type: int | str = 3, ddf: str = "Satterthwaite"
                ) -> pd.DataFrame:
    """ANOVA table of the fixed-effect terms (lmerTest's ``anova(m, type, ddf)``).

    Parameters
    ----------
    fit
        A fitted :class:`~mixeff._fit.LmerFit`.
    type
        1, 2 or 3 (also ``"I"``, ``"II"``, ``"III"``): lmerTest's Type I (sequential),
        Type II or Type III hypotheses.
    ddf
        ``"Satterthwaite"`` (default), ``"Kenward-Roger"`` (REML fits only) or ``"lme4"``
        (lme4's sequential table: ``npar``, ``Sum Sq``, ``Mean Sq``, ``F value``; ``type``
        is ignored, as in lmerTest). Unique prefixes are accepted.

    Returns
    -------
    pandas.DataFrame
        Indexed by formulaic's term labels in model order, columns ``Sum Sq``,
        ``Mean Sq``, ``NumDF``, ``DenDF``, ``F value``, ``Pr(>F)``. A term with nothing
        to test (all its columns dropped) gets a row of NaN at the end, as in lmerTest.
        ``attrs["heading"]`` is lmerTest's title, ``attrs["hypotheses"]`` the contrast
        matrices (term -> DataFrame over the fixed effects), ``attrs["messages"]`` notes
        such as cells without data.
    """
    from ._contrasts import get_contrasts

    method = _match_ddf(ddf)
    if method == "lme4":
        return lme4_table(fit)
    t = _match_type(type)
    messages: list[str] = []
    Ls = get_contrasts(fit.design, t, messages)
    if method == "Kenward-Roger" and not fit.reml and any(L.shape[0] for L in Ls.values()):
        raise ValueError("Kenward-Roger's method is only available for REML model fits")
    names = list(fit.design.xnames)
    rows: dict[str, list[float]] = {}
    for label, L in Ls.items():
        if L.shape[0] == 0:
            continue
        res = fit.contest(L, ddf=method)
        rows[label] = [float(res[c].iloc[0]) for c in ANOVA_COLUMNS]
    for label in Ls:
        if label not in rows:
            rows[label] = [np.nan] * len(ANOVA_COLUMNS)
    table = pd.DataFrame(list(rows.values()), index=pd.Index(list(rows), dtype=object),
                         columns=ANOVA_COLUMNS, dtype=float)
    word = "Satterthwaite's" if method == "Satterthwaite" else "Kenward-Roger's"
    table.attrs["heading"] = (f"Type {_ROMAN[t]} Analysis of Variance Table with {word} "
                              "method")
    table.attrs["hypotheses"] = {k: pd.DataFrame(L, columns=names) for k, L in Ls.items()}
    table.attrs["messages"] = messages
    return table


def lme4_table(fit: LmerFit) -> pd.DataFrame:
    """lme4's ``anova(m)`` of one model: sequential sums of squares ``(R_X beta)^2``.

    Parameters
    ----------
    fit
        A fitted :class:`~mixeff._fit.LmerFit`.

    Returns
    -------
    pandas.DataFrame
        Columns ``npar``, ``Sum Sq``, ``Mean Sq``, ``F value`` (``Mean Sq / sigma^2``),
        one row per term with columns in ``X``, the intercept left out.
    """
    from ._contrasts import term_layout

    lay = term_layout(fit.design)
    beta = np.asarray(fit._sol.beta, dtype=float)
    ss = (fit._sol.RX @ beta) ** 2 if beta.size else np.zeros(0)
    labels: list[str] = []
    for c in lay.col_terms:
        if c not in labels:
            labels.append(c)
    rows = []
    for lab in labels:
        idx = [j for j, c in enumerate(lay.col_terms) if c == lab]
        s = float(np.sum(ss[idx]))
        rows.append((lab, len(idx), s, s / len(idx), s / len(idx) / fit.sigma**2))
    rows = [r for r in rows if r[0] != "(Intercept)"]
    table = pd.DataFrame([r[1:] for r in rows], index=pd.Index([r[0] for r in rows],
                                                                 dtype=object),
                         columns=LME4_COLUMNS)
    table["npar"] = table["npar"].astype(int)
    table.attrs["heading"] = "Analysis of Variance Table"
    return table


def format_anova(table: pd.DataFrame, digits: int = 5, signif_stars: bool = True) -> str:
    """An ANOVA table as R's ``print.anova`` prints it.

    The heading (``attrs["heading"]``) comes first; sums of squares are rounded together
    (``zapsmall``), the test statistic gets its own digits, ``...Df`` columns are printed
    as they are, p values as ``format.pval`` with significance stars and the legend.

    Parameters
    ----------
    table
        An ANOVA table (:func:`anova_table`, :func:`lme4_table`, ``LmFit.anova()``).
    digits
        R's ``digits`` (default ``max(getOption("digits") - 2, 3)`` = 5).
    signif_stars
        Show significance stars.

    Returns
    -------
    str
        The printed text, ending in a newline.
    """
    from ._summary import format_coefmat

    heading = table.attrs.get("heading")
    out = "" if heading is None else str(heading).rstrip("\n") + "\n"
    cn = [str(c) for c in table.columns]
    nc = len(cn)
    has_p = nc > 0 and (cn[-1].startswith("P(") or cn[-1].startswith("Pr("))
    zap = list(range(nc - 1 if has_p else nc))
    tst = [j for j, c in enumerate(cn) if c[1:7] == " value" or c in ("F", "Cp", "Chisq")]
    zap = [j for j in zap if j not in tst and not cn[j].endswith("Df")]
    if len(table) == 0:  # R labels the (absent) rows as "[0,]": 4 characters
        return out + " " * 4 + "".join(" " + c for c in cn) + "\n"
    out += format_coefmat(table.astype(float), digits=digits, signif_stars=signif_stars,
                          has_pvalue=has_p, p_values=has_p, cs_ind=None, zap_ind=zap,
                          tst_ind=tst, na_print="")
    return out
