"""Parse lme4 model formulas: ``y ~ fixed + (expr | group) + ...``.

:func:`parse_formula` splits an lme4 formula string into its response, its fixed part (a
formula string for formulaic), its ``offset(...)`` terms and its random-effects terms,
expanded as lme4 does:

* ``(expr | g)`` is one term; ``(x | g)`` has an implied intercept, ``(0 + x | g)`` and
  ``(-1 + x | g)`` have none;
* ``(expr || g)`` splits into uncorrelated terms, one per model term of ``expr``:
  ``(1 + x || g)`` is ``(1 | g) + (0 + x | g)`` (the intercept is implied as usual);
* ``(expr | a/b)`` is ``(expr | a) + (expr | b:a)``; ``(expr | a/b/c)`` adds ``c:b:a``
  (outer factor first; lme4 labels the nested term ``b:a``);
* ``(expr | a:b)`` is one term whose grouping factor is the interaction of ``a`` and ``b``;
* a bar outside parentheses binds loosest, as in R: ``Yield ~ 1 | Batch`` is
  ``Yield ~ (1 | Batch)`` and ``y ~ x | g`` is ``y ~ 1 + (x | g)``.

Nothing is evaluated on data here; the fixed part and each random-term expression are
checked to be valid formulaic formulas. Every problem is reported as a
:class:`~mixeff._errors.FormulaError` carrying the 0-based position of the fault.

Code in the formula (function arguments, ``{...}`` blocks, the response and the offset
expressions) is read as R reads it and translated to Python first
(:func:`mixeff._expr.translate`: ``I(x^2)`` is a power, ``TRUE``/``FALSE``, ``%in%``,
R's ``&``/``|``/``!``); a ``|`` outside code is the bar of a random-effects term.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass, field, replace

from ._errors import FormulaError

__all__ = ["ParsedFormula", "RandomTerm", "parse_formula"]

_OPEN = "([{"
_CLOSE = ")]}"
_PAIR = {")": "(", "]": "[", "}": "{"}
_QUOTES = "'\"`"
_MASK = "\0"
_NAME_RE = re.compile(r"(?:[^\W\d]|\.)[\w.]*")
_OFFSET_RE = re.compile(r"offset\s*\(")
_NESTED_OFFSET_RE = re.compile(r"(?<![\w.])offset\s*\(")
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
_CALL_RE = re.compile(r"^[\w.]+\s*\(.*\)$", re.DOTALL)
_BACKTICK_RE = re.compile(r"^`[^`]+`$")


@dataclass(frozen=True)
class RandomTerm:
    """One random-effects term ``(expr | group)`` after lme4's expansion.

    Attributes
    ----------
    expr
        Formula text of the term's left side, e.g. ``"1 + Days"``, ``"0 + x"``, ``"1"``.
    factors
        Column names whose interaction is the grouping factor, in label order.
    label
        lme4's name of the grouping factor: ``"Subject"``, ``"recipe:replicate"``; the
        inner term of ``(1 | a/b)`` is ``"b:a"`` with factors ``("b", "a")``.
    start
        0-based offset of the ``(`` that encloses the term's bar in the original formula
        (of the ``~`` for a bar term without parentheses, ``y ~ x | g``).
    """

    expr: str
    factors: tuple[str, ...]
    label: str
    start: int


@dataclass(frozen=True)
class ParsedFormula:
    """An lme4 formula split into its parts.

    Attributes
    ----------
    text
        The formula as given.
    response
        Left-hand side expression (Python code, e.g. ``"Reaction"`` or ``"np.log(y)"``).
    fixed
        Fixed part for formulaic (``"1 + Days"``, ``"0 + x"``...); ``"1"`` when the
        right-hand side has only random-effects or offset terms.
    random
        Random-effects terms, expanded, in formula order.
    offset_exprs
        The expressions inside the ``offset(...)`` terms of the fixed part, in order.
    """

    text: str
    response: str
    fixed: str
    random: tuple[RandomTerm, ...]
    offset_exprs: tuple[str, ...] = field(default=())


# --------------------------------------------------------------------------------------
# lexical scan
# --------------------------------------------------------------------------------------


@dataclass
class _Scan:
    """Bracket structure of a formula string (strings and backtick names masked)."""

    text: str
    masked: str
    depth: list[int]
    enclosing: list[int]
    match: dict[int, int]
    in_code: list[bool]


def _scan(text: str) -> _Scan:
    """Match brackets and quotes; raise FormulaError on unbalanced ones."""
    n = len(text)
    masked = list(text)
    depth = [0] * n
    enclosing = [-1] * n
    in_code = [False] * n
    match: dict[int, int] = {}
    stack: list[int] = []
    code_depth = 0  # number of enclosing {...} or function-call brackets
    code_stack: list[bool] = []
    i = 0
    while i < n:
        ch = text[i]
        depth[i] = len(stack)
        enclosing[i] = stack[-1] if stack else -1
        in_code[i] = code_depth > 0
        if ch in _QUOTES:
            j = i + 1
            while j < n and text[j] != ch:
                if text[j] == "\\" and ch != "`":
                    j += 1
                j += 1
            if j >= n:
                what = "backtick-quoted name" if ch == "`" else "string"
                raise FormulaError(f"unterminated {what} (no closing {ch})", text, i)
            for k in range(i + 1, j):
                masked[k] = _MASK
                depth[k] = len(stack)
                enclosing[k] = enclosing[i]
                in_code[k] = True
            depth[j] = len(stack)
            enclosing[j] = enclosing[i]
            in_code[j] = in_code[i]
            i = j + 1
            continue
        if ch in _OPEN:
            is_code = ch == "{" or (ch in "([" and _is_call(text, i))
            stack.append(i)
            code_stack.append(is_code)
            code_depth += is_code
        elif ch in _CLOSE:
            if not stack:
                raise FormulaError(f"unbalanced parentheses: unmatched '{ch}'", text, i)
            o = stack.pop()
            code_depth -= code_stack.pop()
            if text[o] != _PAIR[ch]:
                raise FormulaError(
                    f"unbalanced parentheses: '{text[o]}' at position {o} is closed by '{ch}'",
                    text, i)
            match[o] = i
            match[i] = o
            depth[i] = len(stack)
            enclosing[i] = stack[-1] if stack else -1
            in_code[i] = code_depth > 0
        i += 1
    if stack:
        o = stack[-1]
        closer = {"(": ")", "[": "]", "{": "}"}[text[o]]
        raise FormulaError(f"unbalanced parentheses: '{text[o]}' is never closed by '{closer}'",
                           text, o)
    return _Scan(text, "".join(masked), depth, enclosing, match, in_code)


def _is_call(text: str, i: int) -> bool:
    """Whether the bracket at ``i`` follows a name, i.e. opens a call or an index."""
    j = i - 1
    while j >= 0 and text[j].isspace():
        j -= 1
    return j >= 0 and (text[j].isalnum() or text[j] in "_.`)]")


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink ``[start, end)`` to exclude surrounding whitespace."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


# --------------------------------------------------------------------------------------
# formulaic checks
# --------------------------------------------------------------------------------------


def _formulaic_position(exc: Exception, source: str) -> int | None:
    """Position in ``source`` that formulaic's error message highlights, if any."""
    msg = _ANSI_RE.sub("", str(exc))
    width = len(source) + 2
    if len(msg) < width:
        return None
    ctx = msg[-width:]
    k = ctx.find("⧛")
    e = ctx.find("⧚", k + 1)
    if k < 0 or e < 0:
        return None
    if ctx[:k] + ctx[k + 1:e] + ctx[e + 1:] != source:
        return None
    return k


def _formulaic_terms(source: str, text: str, posmap: list[int], what: str):
    """Parse ``source`` with formulaic; return its terms or raise a positioned FormulaError.

    ``posmap[i]`` is the position in ``text`` (the whole formula) of ``source[i]``.
    """
    from formulaic import Formula
    from formulaic.formula import SimpleFormula

    def where(k: int | None) -> int | None:
        if k is None or not posmap:
            return None
        return posmap[max(0, min(k, len(posmap) - 1))]

    try:
        formula = Formula(source)
    except Exception as exc:  # formulaic raises several types; all mean "invalid"
        first = _ANSI_RE.sub("", str(exc)).split("\n\n", 1)[0].strip()
        raise FormulaError(f"invalid {what} {source!r}: {first}", text,
                           where(_formulaic_position(exc, source))) from None
    if not isinstance(formula, SimpleFormula):
        raise FormulaError(f"invalid {what} {source!r}: unexpected '~' or '|'", text,
                           where(0))
    return list(formula)


def _term_text(term) -> str:
    """Formula text of one formulaic term that formulaic parses back to the same term."""
    parts = []
    for factor in term.factors:
        method = getattr(factor.eval_method, "value", str(factor.eval_method))
        expr = factor.expr
        if method == "lookup" and not _NAME_RE.fullmatch(expr):
            parts.append(f"`{expr}`")
        elif method == "python" and not _CALL_RE.match(expr):
            parts.append(f"{{{expr}}}")
        else:
            parts.append(expr)
    return ":".join(parts)


def _check_python(expr: str, start: int, text: str, what: str) -> None:
    """Check that ``expr`` (found at ``start`` in ``text``) is a Python expression."""
    if _BACKTICK_RE.match(expr):
        return
    try:
        ast.parse(expr, mode="eval")
    except SyntaxError as exc:
        pos = start
        lineno = exc.lineno or 1
        col = (exc.offset or 1) - 1
        lines = expr.split("\n")
        if 1 <= lineno <= len(lines):
            pos = start + sum(len(x) + 1 for x in lines[: lineno - 1]) + max(0, col)
            pos = min(pos, start + len(expr))
        raise FormulaError(f"invalid {what} {expr!r}: {exc.msg}", text, pos) from None
    except Exception as exc:  # e.g. ValueError for NUL bytes
        raise FormulaError(f"invalid {what} {expr!r}: {exc}", text, start) from None


# --------------------------------------------------------------------------------------
# random-effects terms
# --------------------------------------------------------------------------------------


def _parse_group(text: str, gs: int, ge: int) -> list[tuple[str, ...]]:
    """Parse a grouping-factor expression ``text[gs:ge]`` into slash components.

    Returns the components of ``a:b/c`` as ``[("a", "b"), ("c",)]``.
    """
    bad = ("grouping factor must be a column name, an interaction 'a:b' or a nesting 'a/b' "
           "of column names")
    comps: list[tuple[str, ...]] = []
    current: list[str] = []
    i = gs
    while True:
        while i < ge and text[i].isspace():
            i += 1
        # expect a name
        if i >= ge:
            raise FormulaError(f"{bad}; a name is missing", text, i)
        if text[i] == "`":
            j = text.index("`", i + 1)
            name = text[i + 1:j]
            if not name:
                raise FormulaError(f"{bad}; empty backtick-quoted name", text, i)
            i = j + 1
        else:
            m = _NAME_RE.match(text, i, ge)
            if m is None:
                raise FormulaError(f"{bad}; found {text[i]!r}", text, i)
            name = m.group(0)
            i = m.end()
        current.append(name)
        while i < ge and text[i].isspace():
            i += 1
        if i >= ge:
            comps.append(tuple(current))
            return comps
        if text[i] == ":":
            i += 1
        elif text[i] == "/":
            comps.append(tuple(current))
            current = []
            i += 1
        else:
            raise FormulaError(f"{bad}; found {text[i]!r}", text, i)


def _expand_group(comps: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Expand ``a/b/c`` to the factor tuples ``(a,)``, ``(b, a)``, ``(c, b, a)``."""
    out: list[tuple[str, ...]] = []
    acc: tuple[str, ...] = ()
    for comp in comps:
        acc = comp + acc
        out.append(acc)
    return out


def _parse_bar_term(sc: _Scan, o: int, c: int, bars: list[int]) -> list[RandomTerm]:
    """Parse the random-effects term ``text[o:c+1]`` whose direct bars are ``bars``."""
    text = sc.text
    if len(bars) == 1:
        bar, bar_end, double = bars[0], bars[0] + 1, False
    elif len(bars) == 2 and bars[1] == bars[0] + 1:
        bar, bar_end, double = bars[0], bars[0] + 2, True
    else:
        stray = bars[2] if bars[1] == bars[0] + 1 else bars[1]
        raise FormulaError("stray '|' in random-effects term: write (expr | group) or "
                           "(expr || group)", text, stray)
    es, ee = _strip_span(text, o + 1, bar)
    if es == ee:
        raise FormulaError("random-effects term has no expression before the bar "
                           "(use (1 | group) for a random intercept)", text, bar)
    gs, ge = _strip_span(text, bar_end, c)
    if gs == ge:
        raise FormulaError("random-effects term has no grouping factor after the bar",
                           text, gs)
    expr = text[es:ee]
    if "~" in sc.masked[es:ee]:
        k = sc.masked.index("~", es, ee)
        raise FormulaError("unexpected '~' in a random-effects term", text, k)
    groups = _expand_group(_parse_group(text, gs, ge))
    terms = _formulaic_terms(expr, text, list(range(es, ee)), "random-effects expression")
    nonconst = [t for t in terms if t.degree > 0 or str(t) != "1"]
    has_intercept = len(nonconst) < len(terms)
    if not terms:
        raise FormulaError(f"random-effects term ({expr} | {text[gs:ge]}) has no columns",
                           text, o)
    if double:
        exprs = (["1"] if has_intercept else []) + [f"0 + {_term_text(t)}" for t in nonconst]
    else:
        exprs = [expr]
    return [RandomTerm(expr=e, factors=f, label=":".join(f), start=o)
            for e in exprs for f in groups]


# --------------------------------------------------------------------------------------
# the parser
# --------------------------------------------------------------------------------------


def parse_formula(text: str) -> ParsedFormula:
    """Parse an lme4 formula.

    Parameters
    ----------
    text
        The formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``.

    Returns
    -------
    ParsedFormula
        Response, fixed part, offset expressions and expanded random-effects terms.

    Raises
    ------
    FormulaError
        For any formula that cannot be parsed, with the position of the fault. No other
        exception type is raised, whatever the input.

    Examples
    --------
    >>> pf = parse_formula("strength ~ 1 + (1 | batch/cask)")
    >>> [t.label for t in pf.random]
    ['batch', 'cask:batch']
    """
    if not isinstance(text, str):
        raise FormulaError(f"formula must be a string, not {type(text).__name__}")
    try:
        return _parse_cached(text)
    except FormulaError:
        raise
    except RecursionError:
        raise FormulaError("formula is nested too deeply", text, None) from None
    except Exception as exc:  # pragma: no cover - defensive: never leak other types
        raise FormulaError(f"cannot parse formula ({type(exc).__name__}: {exc})",
                           text, None) from None


@functools.lru_cache(maxsize=256)
def _parse_cached(text: str) -> ParsedFormula:
    """:func:`_parse`, once per formula text (the result is immutable; errors not kept).

    The code regions (the response, calls' arguments, ``{...}`` blocks) are first read as
    R reads them (:func:`mixeff._expr.translate`: ``^`` is the power, ``TRUE``, ``%in%``,
    R's logic, keyword-named columns); errors are positioned in the text as written.
    """
    python, posmap = _to_python(text)
    if python == text:
        return _parse(text)
    try:
        pf = _parse(python)
    except FormulaError as exc:
        pos = exc.position
        if pos is not None and posmap:
            pos = posmap[max(0, min(pos, len(posmap) - 1))] if pos < len(posmap) else len(text)
        msg = str(exc).split(" at position ", 1)[0].split(" in formula ", 1)[0]
        raise FormulaError(msg, text, pos) from None
    terms = tuple(replace(t, start=posmap[t.start] if t.start < len(posmap) else t.start)
                  for t in pf.random)
    return replace(pf, text=text, random=terms)


def _to_python(text: str) -> tuple[str, list[int]]:
    """The formula with its code regions translated from R (see :mod:`mixeff._expr`)."""
    from ._expr import translate

    try:
        sc = _scan(text)
    except FormulaError:
        return text, []  # _parse reports the fault
    tilde = next((i for i in range(len(text))
                  if sc.masked[i] == "~" and sc.depth[i] == 0), len(text))
    in_code = [sc.in_code[i] or i < tilde for i in range(len(text))]
    return translate(text, in_code)


def _parse(text: str) -> ParsedFormula:
    if not text.strip():
        raise FormulaError("empty formula", text, 0)
    sc = _scan(text)
    n = len(text)
    masked = sc.masked

    tildes = [i for i in range(n) if masked[i] == "~" and sc.depth[i] == 0]
    if not tildes:
        raise FormulaError("formula has no '~' (write response ~ terms)", text, 0)
    if len(tildes) > 1:
        raise FormulaError("formula has more than one '~'", text, tildes[1])
    tilde = tildes[0]
    for i in range(n):
        if masked[i] == "~" and sc.depth[i] > 0 and not sc.in_code[i]:
            raise FormulaError("unexpected '~' inside parentheses", text, i)

    # bars: only in random-effects terms or Python code inside {...}
    bars = [i for i in range(n) if masked[i] == "|" and not _in_brace(sc, i)]
    direct: dict[int, list[int]] = {}
    for i in bars:
        direct.setdefault(sc.enclosing[i], []).append(i)
    accounted: set[int] = set()

    ls, le = _strip_span(text, 0, tilde)
    if ls == le:
        raise FormulaError("formula has no response before '~'", text, tilde)
    for i in bars:
        if i < tilde:
            raise FormulaError("'|' is not allowed in the response", text, i)
    response = text[ls:le]

    rs, re_ = _strip_span(text, tilde + 1, n)
    if rs == re_:
        raise FormulaError("formula has no terms after '~'", text, rs)

    # a bar outside parentheses binds loosest, as in R: ``y ~ x | g`` is ``y ~ 1 + (x | g)``
    top = [i for i in bars if sc.depth[i] == 0]
    if top:
        _check_python(response, ls, text, "response")
        for mo in _NESTED_OFFSET_RE.finditer(masked, tilde, top[0]):
            if not _in_brace(sc, mo.start()):
                raise FormulaError("offset() cannot be part of a random-effects term; write "
                                   "y ~ offset(z) + (x | g)", text, mo.start())
        terms = _parse_bar_term(sc, tilde, n, top)
        return ParsedFormula(text=text, response=response, fixed="1", random=tuple(terms),
                             offset_exprs=())

    # split the right-hand side into top-level summands at '+' and '-'
    pieces: list[tuple[str, int, int, int]] = []  # (op, op_pos, start, end)
    op, op_pos, start = "", -1, tilde + 1
    for i in range(tilde + 1, n):
        if sc.depth[i] == 0 and masked[i] in "+-":
            pieces.append((op, op_pos, start, i))
            op, op_pos, start = masked[i], i, i + 1
    pieces.append((op, op_pos, start, n))

    fixed_parts: list[tuple[str, int, int, int]] = []
    offsets: list[str] = []
    random: list[RandomTerm] = []
    for k, (op, op_pos, s0, e0) in enumerate(pieces):
        s, e = _strip_span(text, s0, e0)
        if s == e:
            if k == 0 and len(pieces) > 1:
                continue  # leading unary sign: "-1 + x"
            if k == len(pieces) - 1:
                raise FormulaError(f"formula ends with the operator '{op}'", text, op_pos)
            raise FormulaError("two operators in a row (a term is missing)", text,
                               pieces[k + 1][1])
        # random-effects term: a whole-span bracket group with a bar directly inside
        if text[s] == "(" and sc.match.get(s) == e - 1:
            o, c = s, e - 1
            while True:
                s2, e2 = _strip_span(text, o + 1, c)
                if s2 < e2 and text[s2] == "(" and sc.match.get(s2) == e2 - 1 \
                        and o not in direct:
                    o, c = s2, e2 - 1
                else:
                    break
            if o in direct:
                if op == "-":
                    raise FormulaError("a random-effects term cannot be subtracted", text,
                                       op_pos)
                random.extend(_parse_bar_term(sc, o, c, direct[o]))
                accounted.update(direct[o])
                continue
        m = _OFFSET_RE.match(text, s)
        if m is not None and sc.match.get(m.end() - 1) == e - 1:
            if op == "-":
                raise FormulaError("an offset() term cannot be subtracted", text, op_pos)
            os_, oe = _strip_span(text, m.end(), e - 1)
            if os_ == oe:
                raise FormulaError("offset() needs an expression", text, m.end() - 1)
            expr = text[os_:oe]
            _check_python(expr, os_, text, "offset expression")
            offsets.append(expr)
            continue
        fixed_parts.append((op, op_pos, s, e))

    for i in bars:
        if i not in accounted:
            if sc.depth[i] == 0:
                msg = ("'|' outside parentheses: write random-effects terms as "
                       "(expr | group)")
            else:
                msg = ("'|' is only allowed in a random-effects term '(expr | group)' added "
                       "with '+' (or in Python code inside {...})")
            raise FormulaError(msg, text, i)

    for _, _, s, e in fixed_parts:
        for mo in _NESTED_OFFSET_RE.finditer(masked, s, e):
            if not _in_brace(sc, mo.start()):
                raise FormulaError("offset() must be a separate term added with '+'",
                                   text, mo.start())

    _check_python(response, ls, text, "response")

    # rebuild the fixed part, keeping a map back to positions in the formula
    chars: list[str] = []
    posmap: list[int] = []
    for op, op_pos, s, e in fixed_parts:
        if chars:
            chars.extend(f" {op} ")
            posmap.extend([op_pos, op_pos, op_pos])
        elif op == "-":
            chars.append("-")
            posmap.append(op_pos)
        chars.extend(text[s:e])
        posmap.extend(range(s, e))
    if chars:
        fixed = "".join(chars)
    else:
        fixed = "1"
        posmap = [rs]
    _formulaic_terms(fixed, text, posmap, "fixed-effects part")
    return ParsedFormula(text=text, response=response, fixed=fixed, random=tuple(random),
                         offset_exprs=tuple(offsets))


def _in_brace(sc: _Scan, i: int) -> bool:
    """Whether position ``i`` lies inside a ``{...}`` block or a string."""
    if sc.masked[i] == _MASK:
        return True
    o = sc.enclosing[i]
    while o >= 0:
        if sc.text[o] == "{":
            return True
        o = sc.enclosing[o]
    return False
