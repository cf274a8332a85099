"""Sphinx configuration: Markdown pages (MyST) and an API reference from the docstrings.

Build with ``nox -s docs`` (or ``sphinx-build -b html docs docs/_build/html`` in an
environment with mixeff, sphinx and myst-parser). The build runs the tutorial's
transcripts, as the tests do, to draw the figures it shows into ``docs/figures/``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT / "src"))

project = "mixeff"
author = "the mixeff developers"
copyright = "mixeff developers, GPL-3.0-or-later"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "figures"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_preserve_defaults = True
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
# Private helper types named in signatures and docstrings (Design, Axes, ...) have no
# page of their own.
nitpicky = False
suppress_warnings = ["myst.xref_missing"]

html_theme = "alabaster"
# wide enough for the 100-character tables of the transcripts
html_theme_options = {"page_width": "1240px", "sidebar_width": "240px"}
html_title = "mixeff"


def _draw_tutorial_figures() -> None:
    """Run the tutorial's transcripts in ``docs/`` so that ``figures/*.png`` exist."""
    spec = importlib.util.spec_from_file_location("_mixeff_doc_examples",
                                                  ROOT / "tests" / "test_docs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # dataclasses look their module up there
    spec.loader.exec_module(module)
    module.run_page(module.TUTORIAL, DOCS)


_draw_tutorial_figures()
