"""Fits in worker processes started by fork, spawn and forkserver after a fit in the parent.

GNU OpenMP is not fork-safe: before mixeff's at-fork handling (:mod:`mixeff._forksafe`), a
child forked after a fit on the CHOLMOD path hung for ever in ``cholmod_super_numeric``
and, after a ``blas_threads=None`` fit (Numba's OpenMP layer), was terminated. Each case
runs in its own process group with a timeout, so that a hang fails the test (and its
processes are killed) instead of hanging the test run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent("""
    import multiprocessing as mp
    import sys

    import numpy as np
    import pandas as pd

    from mixeff._api import fit_design
    from mixeff._design import build_design
    from mixeff._formula import parse_formula


    def data():
        rng = np.random.default_rng(5)
        n = 4000
        d = pd.DataFrame({"x": rng.normal(size=n), "a": rng.integers(0, 250, n),
                          "b": rng.integers(0, 150, n)})
        d["y"] = (1 + 0.3 * d.x + rng.normal(size=250)[d.a] * 0.7
                  + rng.normal(size=150)[d.b] * 0.5 + rng.normal(size=n))
        return d


    def work(args):
        factorization, threads = args
        des = build_design(parse_formula("y ~ x + (1 | a) + (1 | b)"), data())
        fit = fit_design(des, factorization=factorization, blas_threads=threads)
        return fit.objective, fit._obj.factorization


    if __name__ == "__main__":
        method, factorization, threads = sys.argv[1], sys.argv[2], sys.argv[3]
        threads = None if threads == "None" else int(threads)
        parent = work((factorization, threads))
        ctx = mp.get_context(method)
        pool = ctx.Pool(2)
        try:
            res = pool.map_async(work, [(factorization, threads)] * 3).get(timeout=90)
        except mp.TimeoutError:
            print("TIMEOUT: the workers hung", flush=True)
            pool.terminate()
            sys.exit(3)
        pool.close()
        pool.join()
        print(repr(parent), repr(res), flush=True)
        assert all(r == parent for r in res), (parent, res)
        print("OK", flush=True)
""")


def _run(tmp_path: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    script = tmp_path / "fork_case.py"
    script.write_text(SCRIPT)
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen([sys.executable, str(script), *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)   # the script and its pool's workers
        out, _ = proc.communicate()
        pytest.fail(f"{args}: hung for {timeout} s\n{out}")
    return subprocess.CompletedProcess(args, proc.returncode, out, "")


@pytest.mark.parametrize("method, factorization, threads", [
    ("fork", "cholmod", "1"),       # hung in cholmod_super_numeric
    ("fork", "cholmod", "None"),
    ("fork", "schur", "None"),      # Numba's OpenMP layer: the child was terminated
    ("fork", "auto", "1"),
    ("spawn", "cholmod", "None"),
    ("forkserver", "cholmod", "None"),
])
def test_pool_workers_fit_after_parent_fit(tmp_path, method, factorization, threads):
    if method not in __import__("multiprocessing").get_all_start_methods():
        pytest.skip(f"start method {method!r} not available here")
    res = _run(tmp_path, method, factorization, threads)
    assert res.returncode == 0 and "OK" in res.stdout, res.stdout


def test_child_uses_helper_thread_only_on_forking_thread():
    """In a forked child, CHOLMOD calls from the forking thread run on a helper thread."""
    import threading

    from mixeff import _forksafe

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            main = threading.get_ident()
            seen = _forksafe.call_openmp(threading.get_ident)
            other = []
            t = threading.Thread(target=lambda: other.append(
                _forksafe.call_openmp(threading.get_ident) == threading.get_ident()))
            t.start()
            t.join()
            try:
                _forksafe.call_openmp(lambda: 1 / 0)
                raised = False
            except ZeroDivisionError:
                raised = True
            ok = _forksafe.in_forked_child() and seen != main and other == [True] and raised
            code = 0 if ok else 2
        finally:
            os.write(w, bytes([code]))
            os._exit(code)
    os.close(w)
    got = os.read(r, 1)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert got == b"\x00" and os.waitstatus_to_exitcode(status) == 0
    # in the parent, calls run directly on the calling thread
    assert not _forksafe.in_forked_child()
    assert _forksafe.call_openmp(threading.get_ident) == threading.get_ident()
