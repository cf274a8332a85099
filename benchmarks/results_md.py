"""Marked sections of ``benchmarks/RESULTS.md`` written by the benchmark scripts.

``run_side_by_side.py`` rewrites the file and keeps every ``<!-- tag: begin -->`` ...
``<!-- tag: end -->`` section other scripts (``bench_dask.py``,
``bench_anova_insteval.py``) put there.
"""

from __future__ import annotations

import re
from pathlib import Path

_SECTION = re.compile(r"<!-- ([\w.-]+): begin -->.*?<!-- \1: end -->", flags=re.S)


def put_section(path: Path, tag: str, text: str) -> None:
    """Write ``text`` into ``path`` as the section ``tag`` (replaced if there, else appended)."""
    begin, end = f"<!-- {tag}: begin -->", f"<!-- {tag}: end -->"
    block = f"{begin}\n{text.strip()}\n{end}"
    old = path.read_text() if path.exists() else ""
    if begin in old and end in old:
        new = old[: old.index(begin)] + block + old[old.index(end) + len(end):]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(new)


def kept_sections(path: Path) -> str:
    """The marked sections of ``path``, in their order, to append to a rewritten file."""
    if not path.exists():
        return ""
    return "".join("\n" + m.group(0) + "\n" for m in _SECTION.finditer(path.read_text()))
