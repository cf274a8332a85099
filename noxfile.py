"""Developer sessions: ``nox -s tests``, ``nox -s lint``, ``nox -s bench``, ``nox -s docs``."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """Run the test suite (reference comparisons read stored JSON; no R needed)."""
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
    session.install("-e", ".[test]")
    # the Python peers compared side by side, and what the runner writes with
    session.install("statsmodels", "mixedlm", "lme-python", "pyarrow")
    session.run("pytest", "benchmarks", "--benchmark-only", *session.posargs)
    session.run("python", "benchmarks/run_side_by_side.py")


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """Execute the documentation's code (the tutorial must run)."""
    session.install("-e", ".[test]")
    session.run("pytest", "tests/test_docs.py")
