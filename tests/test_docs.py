"""The documentation's Python examples run, and show what they print.

Every ```` ```pycon ```` block of ``docs/tutorial.md`` and ``docs/r-users.md`` is a
transcript of an interactive session: ``>>>`` / ``...`` lines are code, the lines after
them (up to the next ``>>>``) are what that code prints. The blocks of one page run in
order in one namespace, in a temporary working folder, with matplotlib's Agg backend;
each output must equal the transcript's. Spaces are not significant (columns may widen
or narrow), nor are blank lines at the ends of an output; integers must be equal and
decimals may differ by 3 units in the last digit shown, so that the jitter of numerical
derivatives (Satterthwaite's df, say 206.99997 or 206.99996) does not fail the test
while any change that a reader would notice does.

Numbers quoted in the tutorial's prose must be numbers its transcripts show (rounded to
the digits quoted), so the text cannot go stale when the outputs change.

After a deliberate change of output, rewrite the transcripts with the new output and
review the diff (the prose checks still apply)::

    MIXEFF_UPDATE_DOCS=1 .venv/bin/pytest -q tests/test_docs.py

``docs/conf.py`` uses :func:`run_page` to draw the tutorial's figures for the HTML build.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TUTORIAL = DOCS / "tutorial.md"
R_USERS = DOCS / "r-users.md"
API = DOCS / "api.md"
INDEX = DOCS / "index.md"

FENCE_RE = re.compile(r"^```pycon[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
ANY_FENCE_RE = re.compile(r"^```.*?^```[ \t]*$", re.MULTILINE | re.DOTALL)
UPDATE = os.environ.get("MIXEFF_UPDATE_DOCS", "") not in ("", "0")
DISPLAY_OPTIONS = ["display.width", "display.precision", "display.max_columns",
                   "display.max_rows"]


# --------------------------------------------------------------------------------------
# transcripts
# --------------------------------------------------------------------------------------


@dataclass
class Example:
    """One ``>>>`` statement of a transcript and the output shown after it."""

    source: str
    want: str
    lineno: int
    got: str = ""


@dataclass
class Block:
    """One ``pycon`` block: its examples and where it sits in the page."""

    start: int
    end: int
    examples: list[Example] = field(default_factory=list)


def parse_page(text: str) -> list[Block]:
    """The ``pycon`` blocks of a Markdown page, in order."""
    blocks = []
    for match in FENCE_RE.finditer(text):
        first_line = text.count("\n", 0, match.start(1)) + 1
        block = Block(match.start(1), match.end(1))
        current: Example | None = None
        in_source = False
        for i, line in enumerate(match.group(1).splitlines()):
            if line.startswith(">>>"):
                current = Example(line[4:], "", first_line + i)
                block.examples.append(current)
                in_source = True
            elif in_source and line.startswith("..."):
                current.source += "\n" + line[4:]
            elif current is None:
                if line.strip():
                    raise ValueError(f"line {first_line + i}: output before any >>> line")
            else:
                in_source = False
                current.want += line + "\n"
        blocks.append(block)
    return blocks


def normalize(output: str) -> str:
    """Output as compared: runs of blanks collapsed, ends of lines and output trimmed."""
    lines = [" ".join(line.split()) for line in output.splitlines()]
    return "\n".join(lines).strip("\n")


_NUMBER_SPLIT_RE = re.compile(r"(\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)")


def _last_digit(text: str) -> float:
    """The value of one unit in the last digit shown: 0.01 for ``"3.14"``."""
    mantissa, _, exponent = text.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exponent or 0) - decimals)


def numbers_close(want: str, got: str) -> bool:
    """Two printed numbers agree: integers exactly, decimals to 3 units in the last digit
    shown, which absorbs the jitter of numerical derivatives."""
    if want == got:
        return True
    if not any(c in want + got for c in ".eE"):
        return False
    w, g = float(want), float(got)
    unit = min(_last_digit(want), _last_digit(got))
    return abs(w - g) <= 3.0 * unit * (1.0 + 1e-9)


def outputs_match(want: str, got: str) -> bool:
    """The text of two outputs is the same and their numbers agree (:func:`numbers_close`)."""
    w_parts = _NUMBER_SPLIT_RE.split(normalize(want))
    g_parts = _NUMBER_SPLIT_RE.split(normalize(got))
    if len(w_parts) != len(g_parts):
        return False
    for i, (w, g) in enumerate(zip(w_parts, g_parts, strict=True)):
        if i % 2 == 0:
            if w.replace(" ", "") != g.replace(" ", ""):   # column widths may change
                return False
        elif not numbers_close(w, g):
            return False
    return True


def run_examples(blocks: list[Block], path: Path, workdir: Path) -> dict:
    """Run the examples in one namespace inside ``workdir``; fill in ``got``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    namespace: dict = {"__name__": "__doc_example__"}
    old = Path.cwd()
    os.chdir(workdir)
    # the pages set pandas' display options; give the rest of the test session its own
    saved = [(name, pd.get_option(name)) for name in DISPLAY_OPTIONS]
    try:
        for block in blocks:
            for ex in block.examples:
                buf = io.StringIO()
                with contextlib.redirect_stdout(buf):
                    try:
                        code = compile(ex.source + "\n", f"{path.name}:{ex.lineno}", "single")
                        exec(code, namespace)
                    except Exception:
                        raise AssertionError(
                            f"{path.name}, line {ex.lineno}: {ex.source!r} raised\n"
                            + traceback.format_exc()
                        ) from None
                ex.got = buf.getvalue()
    finally:
        os.chdir(old)
        plt.close("all")
        for name, value in saved:
            pd.set_option(name, value)
    return namespace


def run_page(path: Path, workdir: Path) -> list[Block]:
    """Parse and run one page's transcripts (used by the tests and ``docs/conf.py``)."""
    blocks = parse_page(path.read_text(encoding="utf-8"))
    run_examples(blocks, path, workdir)
    return blocks


def rewrite_outputs(path: Path, blocks: list[Block]) -> None:
    """Write the outputs got into the page's transcripts (``MIXEFF_UPDATE_DOCS=1``)."""
    text = path.read_text(encoding="utf-8")
    out, pos = [], 0
    for block in blocks:
        out.append(text[pos:block.start])
        body = []
        for ex in block.examples:
            src = ex.source.split("\n")
            body.append(">>> " + src[0])
            body += ["... " + s if s else "..." for s in src[1:]]
            got = "\n".join(line.rstrip() for line in ex.got.splitlines()).strip("\n")
            if got:
                body.append(got)
        out.append("\n".join(body) + "\n")
        pos = block.end
    out.append(text[pos:])
    path.write_text("".join(out), encoding="utf-8")


def check_outputs(path: Path, blocks: list[Block]) -> None:
    if UPDATE:
        rewrite_outputs(path, blocks)
        return
    bad = []
    for block in blocks:
        for ex in block.examples:
            if not outputs_match(ex.want, ex.got):
                bad.append(f"{path.name}, line {ex.lineno}: {ex.source.splitlines()[0]}\n"
                           f"--- shown in the doc ---\n{ex.want.rstrip()}\n"
                           f"--- printed ---\n{ex.got.rstrip()}")
    assert not bad, "\n\n".join(bad)


# --------------------------------------------------------------------------------------
# numbers in the prose
# --------------------------------------------------------------------------------------

# A decimal number standing alone (not part of a name such as ``temp[T.15]`` or a
# version such as ``1.1-31``).
_PROSE_NUMBER_RE = re.compile(r"(?<![\w.\[-])(-?\d+\.\d+)(?![\w.\]-]|\.\d)")
_OUTPUT_NUMBER_RE = re.compile(r"-?\d+\.\d+(?:[eE][-+]?\d+)?|-?\d+")
# Decimals in the prose that are not results (conventions, thresholds, the week 3.5 of a
# contrast).
PROSE_CONSTANTS = {"0.05", "0.001", "0.95", "1.96", "3.5"}


def prose(text: str) -> str:
    """The page without its fenced blocks and inline code."""
    text = ANY_FENCE_RE.sub("", text)
    return re.sub(r"`[^`\n]*`", "", text)


def unmatched_prose_numbers(text: str, shown: str) -> list[str]:
    """Decimals in the prose that no number of the shown output rounds to."""
    values = [float(v) for v in _OUTPUT_NUMBER_RE.findall(shown)]
    missing = []
    for quoted in _PROSE_NUMBER_RE.findall(prose(text)):
        if quoted.lstrip("-") in PROSE_CONSTANTS:
            continue
        digits = len(quoted.split(".")[1])
        if not any(f"{abs(v):.{digits}f}" == quoted.lstrip("-") for v in values):
            missing.append(quoted)
    return missing


# --------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Block], Path]:
    workdir = tmp_path_factory.mktemp("tutorial")
    return run_page(TUTORIAL, workdir), workdir


def test_tutorial_prints_what_it_shows(tutorial: tuple[list[Block], Path]) -> None:
    blocks, _ = tutorial
    assert sum(len(b.examples) for b in blocks) > 20
    check_outputs(TUTORIAL, blocks)


def test_tutorial_draws_its_figures(tutorial: tuple[list[Block], Path]) -> None:
    _, workdir = tutorial
    text = TUTORIAL.read_text(encoding="utf-8")
    images = re.findall(r"!\[[^\]]*\]\((figures/[^)]+\.png)\)", text)
    assert images, "the tutorial shows no figure"
    for image in images:
        path = workdir / image
        assert path.is_file() and path.stat().st_size > 10_000, f"{image} not drawn"


def test_tutorial_prose_quotes_shown_numbers() -> None:
    text = TUTORIAL.read_text(encoding="utf-8")
    shown = "\n".join(ex.want for b in parse_page(text) for ex in b.examples)
    assert unmatched_prose_numbers(text, shown) == []


def test_tutorial_quotes_the_key_results() -> None:
    """The teaching points, each a number in the prose and in the shown output."""
    text = TUTORIAL.read_text(encoding="utf-8")
    shown = "\n".join(ex.want for b in parse_page(text) for ex in b.examples)
    text_prose = prose(text)
    for number in ["234", "27", "35.59", "207", "0.8687", "0.6437", "121.39",
                   "35.38", "162.97"]:
        assert re.search(rf"(?<![\d.]){re.escape(number)}(?![\d])", text_prose), number
        if "." in number:
            assert unmatched_prose_numbers(number, shown) == [], number
        else:
            assert re.search(rf"(?<![\d.]){number}(?![\d])", shown), number


def test_output_comparison() -> None:
    assert outputs_match("df 206.99997  p 1.4073e-164", "df  206.99996 p 1.4074e-164")
    assert outputs_match("DenDF\n27.0001", "DenDF\n 27.0")
    assert not outputs_match("df 206.99997", "df 206.9990")
    assert not outputs_match("Number of obs: 240", "Number of obs: 239")
    assert not outputs_match("F value 121.39", "F value 121.49")
    assert not outputs_match("C(temp)[T.15]", "C(temp)[T.20]")
    assert not outputs_match("plant_id 30", "plant_id 30 extra")


def test_prose_number_check_catches_stale_text() -> None:
    shown = "F value 121.389457 on 2 and 206.999975 df\n234"
    assert unmatched_prose_numbers("F = 121.39 on 2 and 207.0 df", shown) == []
    assert unmatched_prose_numbers("F = 121.4, p = 0.05", shown) == []
    assert unmatched_prose_numbers("F = 125.39 (`temp[T.15]`)", shown) == ["125.39"]


def test_r_users_guide_python_runs(tmp_path: Path) -> None:
    blocks = run_page(R_USERS, tmp_path)
    assert sum(len(b.examples) for b in blocks) > 5
    check_outputs(R_USERS, blocks)


def test_api_reference_covers_the_public_api() -> None:
    import mixeff
    import mixeff.plots

    text = API.read_text(encoding="utf-8")
    documented = set(re.findall(r"\.\. auto\w+:: ([\w.]+)", text))
    for name in mixeff.__all__:
        assert f"mixeff.{name}" in documented, name
    for name in mixeff.plots.__all__:
        assert f"mixeff.plots.{name}" in documented or "mixeff.plots" in documented, name


def test_index_links_the_pages() -> None:
    text = INDEX.read_text(encoding="utf-8")
    for page in ["tutorial", "r-users", "api", "maths"]:
        assert page in text, page


def test_pages_only_set_restored_display_options() -> None:
    for page in (TUTORIAL, R_USERS):
        for name in re.findall(r"set_option\(\"([^\"]+)\"", page.read_text(encoding="utf-8")):
            assert name in DISPLAY_OPTIONS, f"{page.name} sets {name}, not restored after"
