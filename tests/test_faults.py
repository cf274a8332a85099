"""Faults under load (issue 18, item 4): an interrupted fit leaves the process usable, the
Numba cache cannot break an import or a fit, and a Dask worker that dies mid-fit never
gives a wrong answer."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixeff
from mixeff._api import _SharedBlasLimit

SRC = Path(__file__).resolve().parents[1] / "src"


def _blas_counts() -> list[int]:
    from threadpoolctl import threadpool_info

    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def _crossed(seed=2, n=3000, na=200, nb=120) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    d = pd.DataFrame({"x": rng.normal(size=n), "a": rng.integers(0, na, n),
                      "b": rng.integers(0, nb, n)})
    d["y"] = (1 + 0.3 * d.x + rng.normal(size=na)[d.a] + 0.5 * rng.normal(size=nb)[d.b]
              + rng.normal(size=n))
    return d


# ---------------------------------------------------------------------------------------
# KeyboardInterrupt
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["__call__", "gradient"])
def test_keyboard_interrupt_mid_fit_restores_blas_and_next_fit_is_exact(monkeypatch, where):
    from mixeff._objective import LmmObjective

    d = _crossed()
    ref = mixeff.lmer("y ~ x + (1 | a) + (1 | b)", d, optimizer="L-BFGS-B")
    before = _blas_counts()
    real = getattr(LmmObjective, where)
    calls = {"n": 0}

    def interrupted(self, theta):
        calls["n"] += 1
        if calls["n"] == 3:
            assert _blas_counts() == [1] * len(before)   # inside the fit: limited
            raise KeyboardInterrupt
        return real(self, theta)

    monkeypatch.setattr(LmmObjective, where, interrupted)
    with pytest.raises(KeyboardInterrupt):
        mixeff.lmer("y ~ x + (1 | a) + (1 | b)", d, optimizer="L-BFGS-B")
    monkeypatch.setattr(LmmObjective, where, real)
    assert calls["n"] == 3
    assert _blas_counts() == before
    assert _SharedBlasLimit._users == 0 and _SharedBlasLimit._limiter is None
    assert _SharedBlasLimit._lock.acquire(blocking=False)
    _SharedBlasLimit._lock.release()
    again = mixeff.lmer("y ~ x + (1 | a) + (1 | b)", d, optimizer="L-BFGS-B")
    np.testing.assert_array_equal(again.theta, ref.theta)
    assert again.objective == ref.objective


INTERRUPTED = textwrap.dedent("""
    import sys
    import time

    import numpy as np
    import pandas as pd
    from threadpoolctl import threadpool_info

    import mixeff

    def counts():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    rng = np.random.default_rng(2)
    n, na, nb = 20000, 1500, 900
    d = pd.DataFrame({"x": rng.normal(size=n), "a": rng.integers(0, na, n),
                      "b": rng.integers(0, nb, n)})
    d["y"] = (1 + 0.3 * d.x + rng.normal(size=na)[d.a] + 0.5 * rng.normal(size=nb)[d.b]
              + rng.normal(size=n))   # as the test's _crossed(seed=2, 20000, 1500, 900)
    mixeff.lmer("y ~ x + (1 | a) + (1 | b)", d.iloc[:500])   # loads every BLAS library
    before = counts()
    print("READY", flush=True)
    t0 = time.perf_counter()
    try:
        for _ in range(1000):
            mixeff.lmer("y ~ x + (1 | a) + (1 | b)", d)
        print("NOT INTERRUPTED", flush=True)
        sys.exit(1)
    except KeyboardInterrupt:
        print("INTERRUPTED after", round(time.perf_counter() - t0, 2), "s", flush=True)
    assert counts() == before, (counts(), before)
    small = d.iloc[:3000]
    a = mixeff.lmer("y ~ x + (1 | a) + (1 | b)", small)
    print("REFIT", repr(a.objective), flush=True)
""")


def test_sigint_during_a_real_fit_leaves_the_process_usable(tmp_path):
    script = tmp_path / "interrupted.py"
    script.write_text(INTERRUPTED)
    env = dict(os.environ, PYTHONPATH=str(SRC))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "READY"
        time.sleep(2.0)                      # well inside a fit (each takes seconds)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "INTERRUPTED after" in out and "REFIT" in out, out
    d = _crossed(seed=2, n=20000, na=1500, nb=900).iloc[:3000]
    ref = mixeff.lmer("y ~ x + (1 | a) + (1 | b)", d)
    refit = float(out.split("REFIT")[1].split()[0])
    assert refit == pytest.approx(ref.objective, rel=1e-12, abs=0)


# ---------------------------------------------------------------------------------------
# Numba's cache
# ---------------------------------------------------------------------------------------

FIT = textwrap.dedent("""
    import mixeff
    d = mixeff.datasets.load_plant_growth()
    fit = mixeff.lmer("height ~ week + (1 | plant_id)", d)
    print("OBJECTIVE", repr(fit.objective), flush=True)
""")


def _unwritable_package(tmp_path: Path) -> Path:
    """A copy of the package where Numba finds no writable cache location."""
    root = tmp_path / "pkg"
    shutil.copytree(SRC / "mixeff", root / "mixeff",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for dirpath, _, _ in os.walk(root):
        (Path(dirpath) / "__pycache__").write_text("")   # a file: no __pycache__ dir
    return root


def test_no_writable_numba_cache_falls_back_with_a_warning(tmp_path):
    """Before: ``RuntimeError: cannot cache function ...: no locator available`` on import."""
    root = _unwritable_package(tmp_path)
    (tmp_path / "fit.py").write_text(FIT)
    env = dict(os.environ, PYTHONPATH=str(root), NUMBA_CACHE_DIR="/proc/no-such/cache",
               XDG_CACHE_HOME="/proc/no-such", HOME="/proc/no-such",
               PYTHONDONTWRITEBYTECODE="1")
    res = subprocess.run([sys.executable, "-W", "always", str(tmp_path / "fit.py")],
                         capture_output=True, text=True, env=env, timeout=300,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Numba cannot use its on-disk cache" in res.stderr, res.stderr
    assert res.stderr.count("Numba cannot use its on-disk cache") == 1, res.stderr
    ref = mixeff.lmer("height ~ week + (1 | plant_id)", mixeff.datasets.load_plant_growth())
    assert float(res.stdout.split("OBJECTIVE")[1].split()[0]) == ref.objective


def test_failed_cache_write_falls_back_with_a_warning(tmp_path, monkeypatch):
    """A full disk (ENOSPC) while Numba writes its cache: warned, the result is right."""
    from numba.core import caching

    mod = tmp_path / "kern_full_disk.py"
    mod.write_text(textwrap.dedent("""
        from mixeff._jit import njit

        @njit(cache=True)
        def twice(x):
            return 2.0 * x
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "cache"))

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(caching.IndexDataCacheFile, "save", full)
    import mixeff._jit as jit

    monkeypatch.setattr(jit, "_warned", False)
    import kern_full_disk

    with pytest.warns(RuntimeWarning, match="No space left on device"):
        assert kern_full_disk.twice(21.0) == 42.0
    assert kern_full_disk.twice(1.5) == 3.0


def test_interrupted_cold_compile_leaves_a_usable_cache(tmp_path):
    """SIGINT while Numba compiles into an empty cache; the next process must load
    whatever was written without error (entries are written atomically) and fit."""
    cache = tmp_path / "numba-cache"
    (tmp_path / "fit.py").write_text(FIT)
    env = dict(os.environ, PYTHONPATH=str(SRC), NUMBA_CACHE_DIR=str(cache))
    proc = subprocess.Popen([sys.executable, str(tmp_path / "fit.py")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # interrupt once some kernels are cached (mid-compilation of the others)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if cache.exists() and len(list(cache.rglob("*.nbc"))) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "OBJECTIVE" not in out, (out, err)   # interrupted
    assert "KeyboardInterrupt" in err, err
    written = list(cache.rglob("*.nb*"))
    assert written, "nothing was cached before the interrupt"
    res = subprocess.run([sys.executable, "-W", "error::RuntimeWarning",
                          str(tmp_path / "fit.py")], capture_output=True, text=True,
                         env=env, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    ref = mixeff.lmer("height ~ week + (1 | plant_id)", mixeff.datasets.load_plant_growth())
    assert float(res.stdout.split("OBJECTIVE")[1].split()[0]) == ref.objective


# ---------------------------------------------------------------------------------------
# a Dask worker killed mid-fit
# ---------------------------------------------------------------------------------------


def _load_part(i: int, marker: str, always: bool) -> pd.DataFrame:
    """Partition ``i``; partition 3 kills its worker process (once, or every time)."""
    d = _crossed(seed=7, n=2400, na=60, nb=25)
    part = d.iloc[i * 300:(i + 1) * 300]
    if i == 3 and (always or not os.path.exists(marker)):
        Path(marker).write_text("killed")
        os.kill(os.getpid(), signal.SIGKILL)
    return part


def _dask_frame(marker: Path, always: bool):
    dd = pytest.importorskip("dask.dataframe")
    from dask import delayed

    meta = _crossed(seed=7, n=2400, na=60, nb=25).iloc[:0]
    return dd.from_delayed([delayed(_load_part)(i, str(marker), always) for i in range(8)],
                           meta=meta, verify_meta=False)


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        lc = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None)
        client = distributed.Client(lc)
    yield client
    client.close()
    lc.close()


def test_dask_worker_killed_mid_fit_is_retried_same_answer(cluster, tmp_path):
    marker = tmp_path / "killed-once"
    fit = mixeff.lmer("y ~ x + (1 | a) + (1 | b)", _dask_frame(marker, always=False))
    assert marker.exists()                      # a worker did die during the fit
    ref = mixeff.lmer("y ~ x + (1 | a) + (1 | b)", _crossed(seed=7, n=2400, na=60, nb=25))
    assert fit.objective == pytest.approx(ref.objective, rel=1e-10, abs=0)
    np.testing.assert_allclose(fit.theta, ref.theta, rtol=1e-6)
    np.testing.assert_allclose(fit.fixef.to_numpy(), ref.fixef.to_numpy(), rtol=1e-8)


def test_dask_workers_that_keep_dying_give_a_clear_error(cluster, tmp_path):
    marker = tmp_path / "killed-always"
    with pytest.raises(mixeff.DataError, match="Dask workers computing the partitions "
                       "died repeatedly"):
        mixeff.lmer("y ~ x + (1 | a) + (1 | b)", _dask_frame(marker, always=True))
    assert marker.exists()
