"""Developer sessions: ``nox -s tests``, ``nox -s lint``, ``nox -s bench``, ``nox -s docs``."""

from __future__ import annotations

import re
import shutil
import subprocess

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True


def _install_scikit_sparse(session: nox.Session) -> None:
    """Install the scikit-sparse that builds against the system's SuiteSparse.

    0.4.x for SuiteSparse <= 6 (Debian 12), 0.5.x otherwise, as scripts/install.sh
    chooses; left to pip when dpkg cannot tell.
    """
    found = ""
    if shutil.which("dpkg-query"):
        found = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "libsuitesparse-dev"],
                               capture_output=True, text=True, check=False).stdout.strip()
    if found:
        major = re.match(r"(?:\d+:)?(\d+)", found)
        old = major is not None and int(major.group(1)) <= 6
        session.install("scikit-sparse>=0.4.12,<0.5" if old else "scikit-sparse>=0.5")


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """Run the test suite (reference comparisons read stored JSON; no R needed)."""
    _install_scikit_sparse(session)
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff on the package, tests and benchmarks."""
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """Benchmarks: pytest-benchmark suites, then the side-by-side runner against lme4."""
    _install_scikit_sparse(session)
    session.install("-e", ".[test]")
    # the Python peers compared side by side, and what the runner writes with
    session.install("statsmodels", "mixedlm", "lme-python", "pyarrow")
    session.run("pytest", "benchmarks", "--benchmark-only", *session.posargs)
    session.run("python", "benchmarks/run_side_by_side.py")


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """Run the documentation's code, then build the HTML pages into ``docs/_build/html``.

    The tests check that the tutorial and the R guide print what they show; Sphinx (MyST
    Markdown, autodoc + napoleon for the API reference) builds the pages, with warnings
    as errors. The builders are installed here only, not as dependencies of mixeff.
    """
    _install_scikit_sparse(session)
    session.install("-e", ".[test]")
    session.install("sphinx>=7", "myst-parser>=2")
    session.run("pytest", "-q", "tests/test_docs.py")
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html",
                *session.posargs)
