"""The printed summary of a fit, laid out as R's ``print(summary(lme4::lmer(...)))``.

:class:`LmerSummary` reproduces lme4's ``print.summary.merMod`` (and, when the fit offers
Satterthwaite t-tests through a ``coef_table()`` method, the lmerTest variant of it) line
by line: the same sections, the same column layout and the same rounding. To get there the
module carries small re-implementations of the R printing machinery it relies on; they are
public so that other tables (anova, ranova, ...) can be printed the same way:

* :func:`format_r` -- R's ``format(x, digits, nsmall)`` of a numeric vector (``formatReal``:
  a common number of significant digits, fixed or scientific notation by R's width rule
  with ``scipen = 0``);
* :func:`r_round` -- R (>= 4.0.0) ``round(x, digits)``;
* :func:`zapsmall`, :func:`quantile7`, :func:`format_pval`, :func:`abbreviate`,
  :func:`strwrap`, :func:`cat_fill`;
* :func:`format_matrix` and :func:`format_named_vector` -- ``print.default`` of a character
  matrix / named vector (column blocks wrapped at the line width);
* :func:`format_coefmat` -- R's ``printCoefmat``.

Every function returns text; nothing is printed here.
"""

from __future__ import annotations

import html
import inspect
import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from ._fit import LmerFit

__all__ = [
    "LmerSummary",
    "abbreviate",
    "cat_fill",
    "deparse_lines",
    "format_coefmat",
    "format_info",
    "format_matrix",
    "format_named_vector",
    "format_pval",
    "format_r",
    "quantile7",
    "r_round",
    "strwrap",
    "zapsmall",
]

_SINGULAR = "boundary (singular) fit: see help('isSingular')"   # as _fit.SINGULAR_MESSAGE

_DDF = (None, "Satterthwaite", "Kenward-Roger", "lme4")
#: R's ``.Machine$double.eps``.
DOUBLE_EPS = 2.220446049250313e-16
#: R's default ``getOption("width")``.
WIDTH = 80
#: The legend ``printCoefmat`` prints under significance stars (UTF-8 locale).
SIGNIF_LEGEND = ("0 \u2018***\u2019 0.001 \u2018**\u2019 0.01 \u2018*\u2019 0.05 \u2018.\u2019 0.1"
                 " \u2018 \u2019 1")

# -----------------------------------------------------------------------------------
# Numbers: R's formatReal / encodeReal, round, zapsmall, quantile, format.pval
# -----------------------------------------------------------------------------------

_KP_MAX = 27
_LD = np.longdouble
# Powers of ten exactly representable in x87 extended precision (64-bit mantissa).
_TBL: list[np.longdouble] = []
_t = _LD(1)
for _ in range(_KP_MAX + 1):
    _TBL.append(_t)
    _t = _t * _LD(10)
del _t


def _scientific(x: float, digits: int) -> tuple[int, int, int, bool]:
    """R's ``scientific()`` (format.c): sign, decimal exponent, significant digits.

    Returns ``(neg, kpower, nsig, roundingwidens)`` where ``|x| = alpha * 10^kpower`` with
    ``1 <= alpha < 10`` after rounding to ``digits`` significant digits, and ``nsig`` the
    number of significant digits (at most ``digits``) needed to show that rounded value.
    """
    if x == 0.0:
        return 0, 0, 1, False
    neg = 1 if x < 0 else 0
    r = -x if neg else x
    if digits >= 16:  # DBL_DIG + 1: R formats with sprintf
        s = f"{r:#.{digits - 1}e}"
        mant, _, expo = s.partition("e")
        kpower = int(expo)
        figs = mant.replace(".", "")
        nsig = len(figs.rstrip("0")) or 1
        return neg, kpower, nsig, False
    kp = math.floor(math.log10(r)) - digits + 1
    r_prec = _LD(r)
    if abs(kp) <= _KP_MAX:
        if kp > 0:
            r_prec = r_prec / _TBL[kp]
        elif kp < 0:
            r_prec = r_prec * _TBL[-kp]
    else:
        r_prec = r_prec / np.power(_LD(10), _LD(kp))
    if r_prec < _TBL[digits - 1]:
        r_prec = r_prec * _LD(10)
        kp -= 1
    alpha = float(np.rint(r_prec))
    nsig = digits
    for _ in range(digits):
        alpha /= 10.0
        if alpha == math.floor(alpha):
            nsig -= 1
        else:
            break
    if nsig == 0 and digits > 0:
        nsig = 1
        kp += 1
    kpower = kp + digits - 1
    rgt = min(max(digits - kpower, 0), _KP_MAX)
    fuzz = 0.5 / float(_TBL[rgt])
    widens = bool(0 < kpower <= _KP_MAX and _LD(r) < _TBL[kpower] - _LD(fuzz))
    return neg, kpower, nsig, widens


def format_info(x: Sequence[float] | np.ndarray, digits: int = 7,
                nsmall: int = 0) -> tuple[int, int, int]:
    """R's ``formatReal``: common field width, decimals and exponent flag of a vector.

    Parameters
    ----------
    x
        The numbers (NaN stands for R's ``NA``/``NaN``, both shown as ``"NaN"`` unless
        formatted by :func:`format_r` with ``na``).
    digits
        Significant digits wanted (R's ``digits``), at least 1.
    nsmall
        Minimum number of decimals in fixed notation (R's ``nsmall``).

    Returns
    -------
    tuple of int
        ``(w, d, e)``: field width, digits after the point, and 0 for fixed notation or
        the number of exponent digits minus one for scientific notation (R's
        ``format.info``).
    """
    vals = np.asarray(x, dtype=float).ravel()
    rgt = mxl = mxsl = mxns = -(10**9)
    mnl = 10**9
    neg = 0
    naflag = posinf = neginf = False
    for v in vals:
        if not math.isfinite(v):
            if math.isnan(v):
                naflag = True
            elif v > 0:
                posinf = True
            else:
                neginf = True
            continue
        neg_i, kpower, nsig, widens = _scientific(float(v), digits)
        left = kpower + 1
        if widens:
            left -= 1
        sleft = neg_i + (1 if left <= 0 else left)
        right = nsig - left
        if neg_i:
            neg = 1
        rgt = max(rgt, right)
        mxl = max(mxl, left)
        mnl = min(mnl, left)
        mxsl = max(mxsl, sleft)
        mxns = max(mxns, nsig)
    if mxl < 0:
        mxsl = 1 + neg
    if rgt < 0:
        rgt = 0
    wF = mxsl + rgt + (rgt != 0)
    e = 2 if (mxl > 100 or mnl <= -99) else 1
    if mxns > 0:
        d = mxns - 1
        w = neg + (d > 0) + d + 4 + e
        if wF <= w:  # R_print.scipen = 0
            e = 0
            if nsmall > rgt:
                rgt = nsmall
                wF = mxsl + rgt + (rgt != 0)
            d = rgt
            w = wF
    else:
        w = d = e = 0
    if naflag:
        w = max(w, 2)
    if posinf:
        w = max(w, 3)
    if neginf:
        w = max(w, 4)
    return w, d, e


def _encode_real(v: float, w: int, d: int, e: int, na: str = "NA") -> str:
    """R's ``encodeReal0``: one number in a field of width ``w``."""
    if math.isnan(v):
        s = na
    elif math.isinf(v):
        s = "Inf" if v > 0 else "-Inf"
    else:
        if v == 0.0:
            v = 0.0  # no signed zero
        s = f"{v:.{d}e}" if e else f"{v:.{d}f}"
    return s.rjust(w)


def format_r(x: Sequence[float] | np.ndarray | float, digits: int = 7, nsmall: int = 0,
             na: str = "NA") -> list[str]:
    """R's ``format(x, digits = digits, nsmall = nsmall)`` of a numeric vector.

    All elements share the number of decimals (or the scientific layout) and the field
    width, as in R. Fixed notation is used unless it is wider than scientific notation
    (R's rule with ``options(scipen = 0)``).

    Parameters
    ----------
    x
        Number(s); a matrix is formatted as one vector (flattened in C order).
    digits
        Significant digits (R's ``digits``, default 7 as ``getOption("digits")``).
    nsmall
        Minimum decimals in fixed notation.
    na
        Text for NaN entries.

    Returns
    -------
    list of str

    Examples
    --------
    >>> format_r([612.1, 35.07], digits=4)   # R: format(c(612.1, 35.07), digits = 4)
    ['612.10', ' 35.07']
    """
    vals = np.atleast_1d(np.asarray(x, dtype=float)).ravel()
    w, d, e = format_info(vals, digits, nsmall)
    if any(math.isnan(v) for v in vals):
        w = max(w, len(na))
    return [_encode_real(float(v), w, d, e, na) for v in vals]


def r_round(x: float | np.ndarray | Sequence[float], digits: float = 0) -> Any:
    """R's ``round(x, digits)`` (the algorithm of R >= 4.0.0).

    The candidates ``floor(x 10^d) / 10^d`` and ``ceil(x 10^d) / 10^d`` are compared in
    double precision and the closer one is returned (ties to the even last digit); values
    with more than 15 significant digits before the cut are returned unchanged.

    Parameters
    ----------
    x
        Number or array.
    digits
        Decimal places (negative: tens, hundreds...); a fraction counts as
        ``floor(digits + 0.5)``, as in R.

    Returns
    -------
    float or numpy.ndarray
        Same shape as ``x``.
    """
    if np.ndim(x) > 0:
        return np.array([_fround(float(v), digits) for v in np.ravel(x)]).reshape(np.shape(x))
    return _fround(float(x), digits)


def _fround(x: float, digits: float) -> float:
    if math.isnan(x) or not math.isfinite(x) or x == 0.0:
        return x
    if digits > 323:
        return x
    if digits < -308:
        return 0.0
    if digits == 0:
        return float(np.rint(x))
    dig = int(math.floor(digits + 0.5))
    sgn = 1.0
    if x < 0:
        sgn, x = -1.0, -x
    l10x = math.log10(2.0) * (0.5 + math.frexp(x)[1] - 1)  # M_LOG10_2 * (0.5 + logb(x))
    if l10x + dig > 15:  # DBL_DIG
        return sgn * x
    if dig <= 308:
        pow10 = 10.0**dig if dig >= 0 else 1.0 / 10.0 ** (-dig)
        x10 = pow10 * x
        i10 = math.floor(x10)
        xd = i10 / pow10
        xu = math.ceil(x10) / pow10
    else:  # very small x and many digits
        e10 = dig - 308
        p10 = 10.0**e10
        pow10 = 10.0**308
        x10 = (pow10 * x) * p10
        i10 = math.floor(x10)
        xd = i10 / pow10 / p10
        xu = math.ceil(x10) / pow10 / p10
    du = xu - x
    dd = x - xd
    return sgn * (xu if (du < dd or (du == dd and math.fmod(i10, 2.0) == 1)) else xd)


def zapsmall(x: Sequence[float] | np.ndarray, digits: int = 7) -> np.ndarray:
    """R 4.2's ``zapsmall(x, digits)``: round so that values tiny next to the largest are 0.

    The rounding digits are ``max(0, digits - log10(max|x|))`` (not an integer; R's
    ``round`` takes ``floor(digits + 0.5)`` of it).

    Parameters
    ----------
    x
        Numbers (NaN is ignored for the maximum and kept).
    digits
        R's ``digits``.

    Returns
    -------
    numpy.ndarray
    """
    arr = np.asarray(x, dtype=float)
    ok = ~np.isnan(arr)
    if not ok.any():
        return arr
    mx = float(np.max(np.abs(arr[ok])))
    dig = max(0.0, digits - math.log10(mx)) if mx > 0 else digits
    return r_round(arr, dig)


def quantile7(x: Sequence[float] | np.ndarray,
              probs: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0)) -> np.ndarray:
    """R's ``quantile(x, probs, type = 7, na.rm = TRUE)`` with R's interpolation formula.

    Parameters
    ----------
    x
        Numbers; NaN entries are dropped.
    probs
        Probabilities.

    Returns
    -------
    numpy.ndarray
        ``(1 - h) x[lo] + h x[hi]`` at ``1 + (n - 1) p`` (NaN for empty input).
    """
    v = np.sort(np.asarray(x, dtype=float)[~np.isnan(np.asarray(x, dtype=float))])
    n = v.size
    if n == 0:
        return np.full(len(probs), np.nan)
    out = []
    for p in probs:
        index = max(n - 1, 0) * p  # 0-based version of 1 + (n - 1) p
        lo, hi = math.floor(index), math.ceil(index)
        q = v[lo]
        if index > lo and v[hi] != q:
            h = index - lo
            q = (1 - h) * q + h * v[hi]
        out.append(q)
    return np.array(out)


def format_pval(pv: Sequence[float] | np.ndarray, digits: int = 5,
                eps: float = DOUBLE_EPS, na_form: str = "NA") -> list[str]:
    """R's ``format.pval(pv, digits, eps)``.

    Values below ``eps`` print as ``"< 2e-16"`` (or ``"<2e-16"`` when the other entries
    are short); values from 1e-4 up share one fixed format, smaller ones one scientific
    format.

    Parameters
    ----------
    pv
        p values (NaN for missing).
    digits
        Significant digits.
    eps
        Threshold below which ``"< eps"`` is shown (R: ``.Machine$double.eps``).
    na_form
        Text for missing values.

    Returns
    -------
    list of str
        Not padded to a common width.
    """
    p = np.asarray(pv, dtype=float).ravel()
    ina = np.isnan(p)
    q = p[~ina]
    r = [""] * q.size
    is0 = q < eps
    rr: list[str] = []
    if (~is0).any():
        rest = q[~is0]
        expo = np.floor(np.log10(np.where(rest > 0, rest, 1e-50)))
        fixp = (expo >= -3) | ((expo == -4) & (digits > 1))
        rr = [""] * rest.size
        for mask in (fixp, ~fixp):
            if mask.any():
                for i, s in zip(np.flatnonzero(mask), format_r(rest[mask], digits), strict=True):
                    rr[i] = s
        for i, s in zip(np.flatnonzero(~is0), rr, strict=True):
            r[i] = s
    if is0.any():
        dig = max(1, digits - 2)
        if (~is0).any():
            nc = max(len(s) for s in rr)
            if dig > 1 and dig + 6 > nc:
                dig = max(1, nc - 7)
            sep = "" if (dig == 1 and nc <= 6) else " "
        else:
            sep = "" if dig == 1 else " "
        text = "<" + sep + format_r(eps, dig)[0]
        for i in np.flatnonzero(is0):
            r[i] = text
    out = [na_form] * p.size
    for i, s in zip(np.flatnonzero(~ina), r, strict=True):
        out[i] = s
    return out


# -----------------------------------------------------------------------------------
# Text: abbreviate, strwrap, cat(fill = TRUE)
# -----------------------------------------------------------------------------------

_SPACE = " \t\n\v\f\r"


def _isspace(c: str) -> bool:
    return c in _SPACE


def _stripchars(name: str, minlen: int) -> str:
    """R's C ``stripchars`` (character.c) with ``use.classes = TRUE``, ASCII strings."""
    s = list(name)
    if len(s) < minlen:
        return name
    nspace = 0

    def done() -> bool:
        return len(s) - nspace <= minlen

    def firstchar(i: int) -> bool:
        return _isspace(s[i - 1])

    def lastchar(i: int) -> bool:
        return (not _isspace(s[i - 1])) and (i + 1 >= len(s) or _isspace(s[i + 1]))

    def vowel(i: int) -> bool:
        return s[i] in "aeiou"

    def lower(i: int) -> bool:
        return "a" <= s[i] <= "z"

    finished = False
    # trailing spaces are cut, inner ones counted (removed at the end)
    trailing = True
    for i in range(len(s) - 1, 0, -1):
        if _isspace(s[i]):
            if trailing:
                del s[i:]
            else:
                nspace += 1
        else:
            trailing = False
        if done():
            finished = True
            break
    passes = (
        lambda i: vowel(i) and lastchar(i),        # l/case vowels ending a word
        lambda i: vowel(i) and not firstchar(i),   # other l/case vowels, not word starts
        lambda i: lower(i) and lastchar(i),        # l/case letters ending a word
        lambda i: lower(i) and not firstchar(i),   # other l/case letters
        lambda i: not firstchar(i) and not _isspace(s[i]),  # brute force
    )
    for test in passes:
        if finished:
            break
        for i in range(len(s) - 1, 0, -1):
            if i < len(s) and test(i):
                del s[i]
            if done():
                finished = True
                break
    if len(s) > minlen:
        for i in range(len(s) - 1, 0, -1):
            if _isspace(s[i]):
                del s[i]
    return "".join(s)


def abbreviate(names: Sequence[str], minlength: int = 4) -> list[str]:
    """R's ``abbreviate(names, minlength)`` (default method ``"left.kept"``, ASCII names).

    Characters are dropped from the right: lower-case vowels (first at word ends), then
    lower-case letters, then anything but word starts, until ``minlength`` is reached;
    names that collide are abbreviated again with a larger ``minlength``.

    Parameters
    ----------
    names
        The names (ASCII).
    minlength
        Minimum length of the abbreviations.

    Returns
    -------
    list of str
        One abbreviation per name, unique for distinct names.

    Examples
    --------
    >>> abbreviate(["(Intercept)", "Days"], 6)   # R: abbreviate(c("(Intercept)", "Days"), 6)
    ['(Intr)', 'Days']
    """
    old = [re.sub("^ +", "", re.sub(" +$", "", str(n))) for n in names]
    if minlength <= 0:
        return ["" for _ in old]
    uniq = list(dict.fromkeys(old))
    x = list(uniq)
    dup2 = [True] * len(uniq)
    ml = minlength
    while True:
        for i, flag in enumerate(dup2):
            if flag:
                s = uniq[i]
                x[i] = _stripchars(s, ml) if len(s) > ml else s
        seen: set[str] = set()
        dup = []
        for v in x:
            dup.append(v in seen)
            seen.add(v)
        if not any(dup):
            break
        ml += 1
        clash = {v for v, dd in zip(x, dup, strict=True) if dd}
        dup2 = [dd or (v in clash) for v, dd in zip(x, dup, strict=True)]
    lookup = dict(zip(uniq, x, strict=True))
    return [lookup[n] for n in old]


def strwrap(text: str, width: int, indent: int = 0, exdent: int = 0) -> list[str]:
    """R's ``strwrap`` of one paragraph.

    Parameters
    ----------
    text
        The paragraph; words are separated by blanks.
    width
        Lines are kept shorter than this.
    indent, exdent
        Spaces before the first / the other lines.

    Returns
    -------
    list of str
    """
    words = re.split(r"[ \t\n]", text)
    keep = []
    for j, w in enumerate(words):
        if w == "" and not (j > 0 and re.search(r"[.?!][)\"']?$", words[j - 1])):
            continue
        keep.append(w)
    words = keep
    if not words:
        return [""]
    nc = [len(w) for w in words]
    lens = list(np.cumsum([n + 1 for n in nc]))
    lower, upper = [0], []
    current = -1
    max_len = width - indent
    first = True
    while lens:
        k = max(sum(1 for v in lens if v <= max_len), 1)
        if first:
            first = False
            max_len = width - exdent
        current += k
        upper.append(current - 1 if nc[current] == 0 else current)
        if len(lens) > k:
            if nc[current + 1] == 0:
                current += 1
                k += 1
            lower.append(current + 1)
        if len(lens) > k:
            base = lens[k - 1]
            lens = [v - base for v in lens[k:]]
        else:
            lens = []
    out = []
    for b, (lo, up) in enumerate(zip(lower, upper, strict=True)):
        pad = " " * (indent if b == 0 else exdent)
        out.append(pad + " ".join(words[lo : up + 1]))
    return out


def cat_fill(items: Sequence[str], sep: str = " ", width: int = WIDTH) -> str:
    """R's ``cat(..., sep = sep, fill = TRUE)`` of single strings, with the final newline.

    A new line is started before an item that would end beyond ``width`` (the separator
    stays at the end of the previous line, as in R).

    Parameters
    ----------
    items
        The strings, written in turn.
    sep
        Separator written between items.
    width
        Line width (``fill = TRUE`` means ``getOption("width")``).

    Returns
    -------
    str
    """
    out = []
    pos = 0
    for i, p in enumerate(items):
        if i:
            out.append(sep)
        if i and pos + len(p) + len(sep) > width:
            out.append("\n")
            pos = 0
        out.append(p)
        pos += len(p) + len(sep)
    return "".join(out) + "\n"


_BINARY_OP = re.compile(r" (?:\|\||[~+|*-]) ")


def deparse_lines(formula: str, cutoff: int = 60) -> list[str]:
    """Break a long formula into lines as R's ``deparse`` does (``width.cutoff = 60``).

    R writes a formula token by token and starts a new line, indented by four spaces,
    after a spaced binary operator (``~``, ``+``, ``|``, ``*``, ``-``) once the line is
    longer than ``cutoff`` characters. The text itself is kept as written (R would also
    normalise its spacing).
    """
    lines: list[str] = []
    start, indent = 0, ""
    for m in _BINARY_OP.finditer(formula):
        if len(indent) + m.end() - start > cutoff:
            lines.append(indent + formula[start : m.end()])
            start, indent = m.end(), "    "
    lines.append(indent + formula[start:])
    return lines


def _r_char(v: float, digits: int = 7) -> str:
    """A number as ``cat()`` shows it (``formatReal`` of one value, 7 digits)."""
    return format_r(v, digits)[0].strip()


# -----------------------------------------------------------------------------------
# print.default of character matrices and named vectors
# -----------------------------------------------------------------------------------


def format_matrix(cells: Sequence[Sequence[str]], row_names: Sequence[str],
                  col_names: Sequence[str], right: bool = False, width: int = WIDTH) -> str:
    """R's ``print(m, quote = FALSE, right = right)`` of a character matrix.

    Row names are left-aligned; cells and column labels left- (``right=False``, R's
    default) or right-aligned. Columns that do not fit in ``width`` go to further blocks,
    each with its own header line, as R does.

    Parameters
    ----------
    cells
        Rows of cell strings.
    row_names, col_names
        Labels.
    right
        Right-align cells and labels.
    width
        Line width (R's ``getOption("width")``).

    Returns
    -------
    str
        The printed lines, each ending in a newline.
    """
    nr, nc = len(row_names), len(col_names)
    rlabw = max((len(s) for s in row_names), default=0)
    colw = []
    for j in range(nc):
        w = max((len(cells[i][j]) for i in range(nr)), default=0)
        colw.append(max(w, len(col_names[j])))
    lines: list[str] = []
    if nc == 0:
        lines.append(" " * rlabw)
        lines.extend(str(r).ljust(rlabw) for r in row_names)
        return "\n".join(lines) + "\n"
    jmin = 0
    while jmin < nc:
        w_acc = rlabw
        jmax = jmin
        while True:
            w_acc += colw[jmax] + 1
            jmax += 1
            if not (jmax < nc and w_acc + colw[jmax] + 1 < width):
                break
        head = " " * rlabw
        for j in range(jmin, jmax):
            lab = col_names[j]
            head += " " + (lab.rjust(colw[j]) if right else lab.ljust(colw[j]))
        lines.append(head)
        for i in range(nr):
            line = str(row_names[i]).ljust(rlabw)
            for j in range(jmin, jmax):
                c = cells[i][j]
                line += " " + (c.rjust(colw[j]) if right else c.ljust(colw[j]))
            lines.append(line)
        jmin = jmax
    return "\n".join(lines) + "\n"


def format_named_vector(values: Sequence[str], names: Sequence[str],
                        width: int = WIDTH) -> str:
    """R's ``print`` of a named vector whose elements are already formatted strings.

    Names and values are right-aligned in fields of one common width, each followed by a
    space, as many per line as fit in ``width``.

    Parameters
    ----------
    values
        Formatted values (e.g. from :func:`format_r`).
    names
        Their names.
    width
        Line width.

    Returns
    -------
    str
        Pairs of name and value lines, each ending in a newline.
    """
    w = max([len(v) for v in values] + [len(n) for n in names] + [0])
    per_line = max(1, width // (w + 1))
    lines = []
    for start in range(0, len(values), per_line):
        idx = range(start, min(start + per_line, len(values)))
        lines.append("".join(names[k].rjust(w) + " " for k in idx))
        lines.append("".join(values[k].rjust(w) + " " for k in idx))
    return "\n".join(lines) + "\n"


# -----------------------------------------------------------------------------------
# printCoefmat
# -----------------------------------------------------------------------------------

_MISSING: Any = object()


def _signif_stars(pv: np.ndarray) -> list[str]:
    out = []
    for p in pv:
        if math.isnan(p):
            out.append("")
        elif p <= 0.001:
            out.append("***")
        elif p <= 0.01:
            out.append("**")
        elif p <= 0.05:
            out.append("*")
        elif p <= 0.1:
            out.append(".")
        else:
            out.append(" ")
    return out


def format_coefmat(
    x: pd.DataFrame,
    digits: int = 5,
    signif_stars: bool = True,
    signif_legend: bool | None = None,
    dig_tst: int | None = None,
    cs_ind: Sequence[int] | None = _MISSING,
    tst_ind: Sequence[int] | None = _MISSING,
    zap_ind: Sequence[int] = (),
    p_values: bool | None = None,
    has_pvalue: bool | None = None,
    eps_pvalue: float = DOUBLE_EPS,
    na_print: str = "NA",
    right: bool = True,
    width: int = WIDTH,
) -> str:
    """R's ``printCoefmat``: a coefficient (or anova) table as R prints it.

    Parameters
    ----------
    x
        The table: row labels in the index, numeric columns (NaN for ``NA``).
    digits
        R's ``digits`` (default ``max(3, getOption("digits") - 2)`` = 5).
    signif_stars, signif_legend
        Add significance stars (and the legend, default: when stars are shown).
    dig_tst
        Digits of the test statistic (default ``max(1, min(5, digits - 1))``).
    cs_ind
        0-based columns of coefficients and standard errors, formatted together (default:
        all columns before the test statistic; ``None`` or ``()`` for none, R's ``NULL``).
    tst_ind
        0-based columns of test statistics (default: the column after ``cs_ind``).
    zap_ind
        0-based columns passed through :func:`zapsmall` first.
    p_values, has_pvalue
        Whether the last column holds p values (default: its name starts with ``"Pr("``
        or ``"p-v"``) and whether to show them.
    eps_pvalue
        p values below this print as ``"< eps"``.
    na_print
        Text for missing entries.
    right
        Right-align the columns (R's default for printCoefmat).
    width
        Line width.

    Returns
    -------
    str
        The printed table (and the significance legend), ending in a newline.
    """
    xm = x.to_numpy(dtype=float, copy=True)
    nr, nc = xm.shape
    cn = [str(c) for c in x.columns]
    if has_pvalue is None:
        has_pvalue = nc >= 4 and cn[-1][:3] in ("Pr(", "p-v")
    if p_values is None:
        p_values = has_pvalue
    elif p_values and not has_pvalue:
        raise ValueError("'p_values' is True, but 'has_pvalue' is not")
    if has_pvalue and not p_values:
        xm = xm[:, :-1]
        cn = cn[:-1]
        nc -= 1
        has_pvalue = False
    ntst = 1 if tst_ind is _MISSING else len(tst_ind or ())
    k = nc - int(has_pvalue) - ntst
    cs = list(range(k)) if cs_ind is _MISSING else list(cs_ind or ())
    tst = [k] if tst_ind is _MISSING else list(tst_ind or ())
    if dig_tst is None:
        dig_tst = max(1, min(5, digits - 1))
    if cs_ind is not _MISSING and len(cs) > k:
        raise ValueError("wrong k / cs_ind")
    cf = [["" for _ in range(nc)] for _ in range(nr)]
    ina = np.isnan(xm)
    ok = ~ina
    for i in zap_ind:
        xm[:, i] = zapsmall(xm[:, i], digits)
    if cs:
        coef_se = xm[:, cs]
        acs = np.abs(coef_se)
        ia = np.isfinite(acs)
        if ia.any():
            nz = acs[ia & (acs != 0)]
            if nz.size:
                digmin = 1 + np.floor(np.log10(np.array([nz.min(), nz.max()])))
            else:
                digmin = np.array([1.0])
            rd = int(max(1, np.max(digits - digmin)))
            strs = format_r(r_round(coef_se, rd), digits)
            it = iter(strs)
            for i in range(nr):
                for j in cs:
                    cf[i][j] = next(it)
    for j in tst:
        strs = format_r(r_round(xm[:, j], dig_tst), digits)
        for i in range(nr):
            cf[i][j] = strs[i]
    others = [j for j in range(nc) if j not in cs and j not in tst
              and not (has_pvalue and j == nc - 1)]
    for j in others:
        strs = format_r(xm[:, j], digits)
        for i in range(nr):
            cf[i][j] = strs[i]
    # entries shown as 0 that are not 0 (or the reverse) get fewer digits
    okp = ok.copy()
    okp[:, tst] = False
    if has_pvalue:
        okp[:, nc - 1] = False
    pos = [(i, j) for j in range(nc) for i in range(nr) if okp[i, j]]
    bad = []
    for i, j in pos:
        try:
            shown0 = float(cf[i][j]) == 0
        except ValueError:
            continue
        if (xm[i, j] == 0) != shown0:
            bad.append((i, j))
    if bad:
        strs = format_r([xm[i, j] for i, j in bad], max(1, digits - 1))
        for (i, j), s in zip(bad, strs, strict=True):
            cf[i][j] = s
    for i in range(nr):
        for j in range(nc):
            if ina[i, j]:
                cf[i][j] = na_print
    stars_shown = False
    legend = ""
    if p_values:
        okp_col = ok[:, nc - 1]
        if okp_col.any():
            pv = xm[:, nc - 1]
            strs = format_pval(pv[okp_col], digits=dig_tst, eps=eps_pvalue)
            for i, s in zip(np.flatnonzero(okp_col), strs, strict=True):
                cf[i][nc - 1] = s
            stars_shown = signif_stars and bool(np.any(pv[okp_col] < 0.1))
            if stars_shown:
                st = _signif_stars(pv)
                sw = max(len(s) for s in st)
                for i in range(nr):
                    cf[i].append(st[i].ljust(sw))
                cn = cn + [""]
                legend = SIGNIF_LEGEND
    out = format_matrix(cf, [str(r) for r in x.index], cn, right=right, width=width)
    if signif_legend is None:
        signif_legend = stars_shown
    if stars_shown and signif_legend:
        out += "---\nSignif. codes:  " + legend + "\n"
    return out


# -----------------------------------------------------------------------------------
# The summary
# -----------------------------------------------------------------------------------


class LmerSummary:
    """Summary of a linear mixed model fit, printed as lme4's ``summary(lmer(...))``.

    ``str(summary)`` gives the text R prints: title, formula and data, the REML criterion
    (or the AIC/BIC/logLik/deviance/df.resid table of an ML fit), quantiles of the scaled
    Pearson residuals, the random-effects table, the numbers of observations and groups,
    the fixed-effects table, the correlation of the fixed effects (for 2 to 12 of them)
    and the fit's warnings. When the fit has a ``coef_table()`` method (Satterthwaite
    t-tests) its table is printed with lmerTest's title, stars and p values.

    Parameters
    ----------
    fit
        The fit.
    digits
        Significant digits (R: ``max(3, getOption("digits") - 3)`` = 4).
    correlation
        Show the correlation of the fixed effects: ``None`` (default) for R's rule (when
        there are at most 12 fixed effects), True or False.
    ddf
        Denominator degrees of freedom of the t-tests: ``None`` (default) uses the fit's
        ``coef_table()`` when it has one (lmerTest's layout: Satterthwaite df, p values)
        and plain Wald t values otherwise; ``"Satterthwaite"`` or ``"Kenward-Roger"`` ask
        ``fit.coef_table(ddf=...)`` for that method; ``"lme4"`` gives lme4's own layout.
    signif_stars
        Show significance stars with p values.
    width
        Line width (R's ``getOption("width")``).
    weights_label, offset_label
        Text of the ``Weights:`` / `` Offset:`` lines (R prints the ``weights =`` and
        ``offset =`` arguments of the call); by default the fit's ``weights_name`` /
        ``offset_name`` attributes when present.

    Attributes
    ----------
    fit
        The fit summarised.
    """

    #: R class names shown in the title bracket (lme4 / lmerTest layout).
    r_class = "lmerMod"
    r_class_tests = "lmerModLmerTest"
    #: lme4's ``getOption("lme4.summary.cor.max")``.
    cor_max = 12

    def __init__(self, fit: LmerFit, *, digits: int = 4, correlation: bool | None = None,
                 ddf: str | None = None, signif_stars: bool = True, width: int = WIDTH,
                 weights_label: str | None = None, offset_label: str | None = None):
        if ddf not in _DDF:
            raise ValueError("ddf must be None, 'Satterthwaite', 'Kenward-Roger' or 'lme4'")
        if ddf not in (None, "lme4") and not callable(getattr(fit, "coef_table", None)):
            raise ValueError(f"this fit offers no t-tests with {ddf} degrees of freedom")
        self.fit = fit
        self.digits = int(digits)
        self.correlation = correlation
        self.ddf = ddf
        self.signif_stars = signif_stars
        self.width = int(width)
        self.weights_label = weights_label
        self.offset_label = offset_label
        self._coef: pd.DataFrame | None = None

    # -- tables ---------------------------------------------------------------------
    @property
    def has_tests(self) -> bool:
        """True when the fixed-effects table carries df and p values (lmerTest layout)."""
        return self.ddf != "lme4" and callable(getattr(self.fit, "coef_table", None))

    @property
    def ddf_method(self) -> str | None:
        """Name of the df method of the t-tests (``None`` for lme4's layout)."""
        return (self.ddf or "Satterthwaite") if self.has_tests else None

    def coef_table(self) -> pd.DataFrame:
        """The fixed-effects table.

        ``Estimate``, ``Std. Error`` and ``t value`` (Wald); when the fit has a
        ``coef_table()`` method (and ``ddf`` is not ``"lme4"``) its table instead, e.g.
        with lmerTest's ``df`` and ``Pr(>|t|)`` columns.
        """
        if self._coef is not None:
            return self._coef
        if self.has_tests:
            fn = self.fit.coef_table
            try:
                takes_ddf = "ddf" in inspect.signature(fn).parameters
            except (TypeError, ValueError):  # pragma: no cover - builtins
                takes_ddf = False
            self._coef = fn(ddf=self.ddf_method) if takes_ddf else fn()
            return self._coef
        est = np.asarray(self.fit.fixef, dtype=float)
        names = list(self.fit.fixef.index)
        V = self.fit.vcov()
        se = np.sqrt(np.diag(np.asarray(V, dtype=float))) if len(names) else np.zeros(0)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = est / se
        self._coef = pd.DataFrame({"Estimate": est, "Std. Error": se, "t value": t},
                                  index=names)
        return self._coef

    def residual_quantiles(self) -> pd.Series:
        """Min, 1Q, Median, 3Q, Max of the scaled Pearson residuals (R's type 7)."""
        r = np.asarray(self.fit.residuals(type="pearson", scaled=True), dtype=float)
        r = r[~np.isnan(r)]  # na_action="exclude" pads with NaN
        return pd.Series(quantile7(r), index=["Min", "1Q", "Median", "3Q", "Max"])

    def _vc_blocks(self) -> tuple[list[tuple[str, list[str], np.ndarray, np.ndarray]], float]:
        """Per random-effects term: (group, names, SDs, correlation matrix); sigma."""
        vc = self.fit.varcorr()
        blocks: dict[str, dict[str, Any]] = {}
        sigma = float("nan")
        for row in vc.itertuples(index=False):
            group, n1, n2, sdc = row.group, row.name1, row.name2, float(row.sd_cor)
            if _missing(n1) and _missing(n2) and group == "Residual":
                sigma = sdc
                continue
            b = blocks.setdefault(group, {"names": [], "sd": [], "cor": {}})
            if _missing(n2):
                b["names"].append(str(n1))
                b["sd"].append(sdc)
            else:
                b["cor"][(str(n1), str(n2))] = sdc
        out = []
        for group, b in blocks.items():
            k = len(b["names"])
            C = np.eye(k)
            for (a, c), v in b["cor"].items():
                i, j = b["names"].index(a), b["names"].index(c)
                C[i, j] = C[j, i] = v
            out.append((group, b["names"], np.asarray(b["sd"], dtype=float), C))
        return out, sigma

    # -- sections -------------------------------------------------------------------
    def _title(self) -> str:
        tit = "Linear mixed model fit by " + ("REML" if self.fit.reml else "maximum likelihood ")
        cls = self.r_class
        if self.has_tests:
            tit += f". t-tests use {self.ddf_method}'s method"
            cls = self.r_class_tests
        if len(tit) + 5 + len(cls) > self.width:
            lines = strwrap(tit, self.width - 2, exdent=2)
            return cat_fill([*lines, " [", cls, "]"], sep="", width=self.width)
        return f"{tit} ['{cls}']\n"

    def _call_lines(self) -> str:
        fit = self.fit
        out = cat_fill(["Formula:", *deparse_lines(str(fit.formula))], width=self.width)
        data_name = getattr(fit, "data_name", None)
        if data_name:
            out += cat_fill(["   Data:", str(data_name)], width=self.width)
        design = getattr(fit, "design", None)
        wl = self.weights_label or getattr(fit, "weights_name", None)
        if wl is None and design is not None and getattr(design, "weights", None) is not None:
            wl = "<weights vector>"
        if wl:
            out += cat_fill(["Weights:", str(wl)], width=self.width)
        ol = self.offset_label or getattr(fit, "offset_name", None)
        if ol:
            out += cat_fill([" Offset:", str(ol)], width=self.width)
        return out

    def _aic_lines(self) -> str:
        fit = self.fit
        if fit.reml:
            return cat_fill(["REML criterion at convergence:",
                             _r_char(r_round(float(fit.objective), 1))], width=self.width)
        vals = [fit.aic, fit.bic, fit.loglik, fit.deviance, fit.nobs - fit.npar]
        rounded = [r_round(float(v), 1) for v in vals]
        strs = format_r(rounded)
        strs[-1] = format_r(rounded[-1])[0]
        return format_named_vector(strs, ["AIC", "BIC", "logLik", "deviance", "df.resid"],
                                   width=self.width)

    def _resid_lines(self) -> str:
        q = zapsmall(self.residual_quantiles().to_numpy(), self.digits + 1)
        return ("Scaled residuals: \n"
                + format_named_vector(format_r(q, self.digits),
                                      ["Min", "1Q", "Median", "3Q", "Max"], width=self.width)
                + "\n")

    def _ranef_lines(self) -> str:
        blocks, sigma = self._vc_blocks()
        groups, names, sds = [], [], []
        for group, nm, sd, _ in blocks:
            groups += [group] + [""] * (len(nm) - 1)
            names += nm
            sds += list(sd)
        groups.append("Residual")
        names.append("")
        sds.append(sigma)
        sd_arr = np.asarray(sds, dtype=float)
        cols = [groups, names, format_r(sd_arr**2, self.digits), format_r(sd_arr, self.digits)]
        col_names = ["Groups", "Name", "Variance", "Std.Dev."]
        lens = [len(b[1]) for b in blocks]
        if lens and max(lens) > 1:
            maxlen = max(lens)
            dig = max(2, self.digits - 2)
            corr_rows: list[list[str]] = []
            for _, nm, _, C in blocks:
                k = len(nm)
                cc = format_r(r_round(C, dig), nsmall=dig, na="NaN")  # 0/0 is NaN in R
                for i in range(k):
                    row = [cc[i * k + j] if j < i else "" for j in range(k)]
                    corr_rows.append(row + [""] * (maxlen - k))
            corr_rows.append([""] * maxlen)
            for j in range(maxlen - 1):
                cols.append([r[j] for r in corr_rows])
                col_names.append("Corr" if j == 0 else "")
        cells = [list(r) for r in zip(*cols, strict=True)]
        return "Random effects:\n" + format_matrix(cells, [""] * len(cells), col_names,
                                                    width=self.width)

    def _ngroups_line(self) -> str:
        ng = self.fit.ngroups
        txt = "; ".join(f"{k}, {v}" for k, v in ng.items())
        return cat_fill([f"Number of obs: {int(self.fit.nobs)}, groups: ", txt],
                        width=self.width)

    def _fixef_lines(self) -> str:
        tab = self.coef_table()
        p = tab.shape[0]
        if p == 0:
            return ""
        out = "\nFixed effects:\n"
        out += format_coefmat(tab, digits=self.digits, signif_stars=self.signif_stars,
                              width=self.width)
        correlation = self.correlation
        if correlation is None:
            correlation = p <= self.cor_max
        if correlation and p > 1:
            V = np.asarray(self.fit.vcov(), dtype=float)
            sd = np.sqrt(np.diag(V))
            C = V / np.outer(sd, sd)
            np.fill_diagonal(C, 1.0)
            rn = [str(n) for n in tab.index]
            strs = format_r(r_round(C, 3), nsmall=3)
            cells = [[strs[i * p + j] if j < i else "" for j in range(p - 1)]
                     for i in range(1, p)]
            out += "\nCorrelation of Fixed Effects:\n"
            out += format_matrix(cells, abbreviate(rn, 11)[1:], abbreviate(rn, 6)[:-1],
                                 width=self.width)
        return out

    def _warning_lines(self) -> str:
        fit = self.fit
        design = getattr(fit, "design", None)
        fit_msgs = [m for m in (getattr(design, "messages", None) or []) if m]
        out = ""
        if fit_msgs:
            out += "fit warnings:\n" + "\n".join(fit_msgs) + "\n"
        opt = getattr(fit, "optsum", None)
        msgs = [m for m in list(getattr(fit, "messages", []) or []) if m not in fit_msgs]
        if getattr(fit, "is_singular", False) and _SINGULAR not in msgs:
            msgs.append(_SINGULAR)
        if opt is None:
            return out
        ok = bool(getattr(opt, "success", True))
        if (not ok) or msgs:
            code = int(getattr(opt, "code", 0))
            m = "(OK)" if ok else f"({getattr(opt, 'message', '')})"
            conv = f"optimizer ({opt.method}) convergence code: {code} {m}"
            msgs = [s for s in msgs if s != conv]
            out += "\n".join([conv, *msgs]) + "\n\n"
        return out

    # -- output ---------------------------------------------------------------------
    def text(self) -> str:
        """The printed summary, every line (the last one too) ending in a newline."""
        return (self._title() + self._call_lines() + "\n" + self._aic_lines() + "\n"
                + self._resid_lines() + self._ranef_lines() + self._ngroups_line()
                + self._fixef_lines() + self._warning_lines())

    def __str__(self) -> str:
        # without the final newline: print() adds it back
        t = self.text()
        return t[:-1] if t.endswith("\n") else t

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return "<pre>" + html.escape(str(self)) + "</pre>"


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))
