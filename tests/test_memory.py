"""Memory budget: a factorisation that does not fit is refused with the figures, before
anything large is allocated, and ``"auto"`` takes a path that fits.

The capped-memory tests run in a subprocess whose address space is limited with
``resource.setrlimit(RLIMIT_AS)``: without the budget, the dense Schur path of a crossed
design with 20,000 levels in its second factor asks for 6 GB and dies by MemoryError or
the OOM killer, and CHOLMOD runs out of memory after a long analysis.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import mixeff
from mixeff import _memory as mem
from mixeff._api import fit_design
from mixeff._cholmod import SparseCholesky
from mixeff._design import build_design
from mixeff._formula import parse_formula
from mixeff._kenward_roger import KenwardRogerError

CAPPED = textwrap.dedent("""
    import resource
    import sys

    import numpy as np
    import pandas as pd

    import mixeff
    from mixeff._api import fit_design
    from mixeff._design import build_design
    from mixeff._formula import parse_formula
    from mixeff._memory import _status_kb

    na, nb, n, factorization, extra_gb = sys.argv[1:6]
    na, nb, n = int(na), int(nb), int(n)
    rng = np.random.default_rng(1)
    d = pd.DataFrame({"x": rng.normal(size=n), "a": rng.integers(0, na, n),
                      "b": rng.integers(0, nb, n)})
    d["y"] = (d.x + rng.normal(size=na)[d.a] + rng.normal(size=nb)[d.b]
              + rng.normal(size=n))
    des = build_design(parse_formula("y ~ x + (1 | a) + (1 | b)"), d)
    cap = _status_kb("VmSize") + int(float(extra_gb) * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    try:
        fit = fit_design(des, factorization=factorization)
    except mixeff.DataError as err:
        print("DataError:", err)
        sys.exit(0)
    print("FITTED", fit._obj.factorization, repr(fit.objective))
""")


def _capped(tmp_path: Path, *args: str, timeout: float = 240) -> str:
    script = tmp_path / "capped.py"
    script.write_text(CAPPED)
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run([sys.executable, str(script), *args], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stdout + res.stderr   # no crash, no MemoryError
    return res.stdout


def test_capped_address_space_dense_schur_refused(tmp_path):
    out = _capped(tmp_path, "30000", "20000", "200000", "schur", "1.0")
    assert "DataError: not enough memory: the dense Schur path" in out, out
    assert "19,999 x 19,999" in out and "6.0 GB" in out and "RLIMIT_AS" in out, out
    assert "factorization='auto' or 'cholmod'" in out, out


@pytest.mark.parametrize("factorization", ["auto", "cholmod"])
def test_capped_address_space_cholmod_factor_refused(tmp_path, factorization):
    out = _capped(tmp_path, "30000", "20000", "200000", factorization, "1.0")
    assert "DataError: not enough memory: the sparse Cholesky factor" in out, out
    assert "predicted by CHOLMOD's symbolic analysis" in out and "RLIMIT_AS" in out, out
    assert "Fewer random effects" in out, out


def test_capped_address_space_fit_that_fits_is_unchanged(tmp_path):
    out = _capped(tmp_path, "250", "150", "4000", "auto", "1.0")
    assert out.startswith("FITTED"), out
    rng = np.random.default_rng(1)
    n, na, nb = 4000, 250, 150
    d = pd.DataFrame({"x": rng.normal(size=n), "a": rng.integers(0, na, n),
                      "b": rng.integers(0, nb, n)})
    d["y"] = (d.x + rng.normal(size=na)[d.a] + rng.normal(size=nb)[d.b]
              + rng.normal(size=n))
    fit = fit_design(build_design(parse_formula("y ~ x + (1 | a) + (1 | b)"), d))
    assert float(out.split()[2]) == pytest.approx(fit.objective, rel=1e-12, abs=0)


def _nested() -> pd.DataFrame:
    """2,000 levels of ``a`` nested in 400 of ``b``: a sparse factor, a 400 x 400 Schur."""
    rng = np.random.default_rng(3)
    a = np.repeat(np.arange(2000), 5)
    b = a // 5
    d = pd.DataFrame({"a": a, "b": b, "x": rng.normal(size=a.size)})
    d["y"] = (0.5 * d.x + rng.normal(size=2000)[d.a] + rng.normal(size=400)[d.b]
              + rng.normal(size=a.size))
    return d


def test_auto_moves_to_cholmod_when_schur_does_not_fit():
    des = build_design(parse_formula("y ~ x + (1 | a) + (1 | b)"), _nested())
    ref = fit_design(des)
    assert ref._obj.factorization == "schur"          # q2 = 400: dense Schur by default
    assert mem.schur_bytes(400) == 2 * 8 * 400 * 400  # 2.56 MB: does not fit in 1 MB
    fit = fit_design(des, memory_limit="1MB")
    assert fit._obj.factorization == "cholmod"
    assert fit.objective == pytest.approx(ref.objective, rel=1e-10, abs=0)
    np.testing.assert_allclose(fit.theta, ref.theta, rtol=1e-5)
    with pytest.raises(mixeff.DataError, match=r"dense Schur path \(400 x 400 doubles.*"
                       r"needs about 2\.4 MB, and memory_limit=1\.0 MB leaves 1\.0 MB"):
        fit_design(des, factorization="schur", memory_limit="1MB")


def test_auto_moves_to_schur_when_cholmod_does_not_fit(monkeypatch):
    rng = np.random.default_rng(4)
    n = 6000
    d = pd.DataFrame({"a": rng.integers(0, 3000, n), "b": rng.integers(0, 700, n),
                      "x": rng.normal(size=n)})
    d["y"] = d.x + rng.normal(size=3000)[d.a] + rng.normal(size=700)[d.b] + rng.normal(size=n)
    des = build_design(parse_formula("y ~ x + (1 | a) + (1 | b)"), d)
    ref = fit_design(des)
    assert ref._obj.factorization == "cholmod"         # sparse Schur complement
    entries = mem.factor_entries(ref._obj.blocks.m_indptr, ref._obj.blocks.m_indices,
                                 ref._obj.perm)
    # a budget between the two needs: the Schur path's 7.8 MB fits, CHOLMOD's does not
    b = ref._obj.blocks
    schur = mem.schur_bytes(b.q - b.re.terms[0].size)
    monkeypatch.setattr(mem, "CHOLMOD_BYTES_PER_ENTRY", 4 * schur / entries)
    fit = fit_design(des, memory_limit=int(2 * schur))
    assert fit._obj.factorization == "schur"
    assert fit.objective == pytest.approx(ref.objective, rel=1e-10, abs=0)
    with pytest.raises(mixeff.DataError, match="sparse Cholesky factor"):
        fit_design(des, factorization="cholmod", memory_limit=int(2 * schur))


@pytest.mark.parametrize("n, density, seed", [(60, 0.1, 0), (400, 0.02, 1), (2500, 0.003, 2)])
def test_factor_entries_equal_cholmod_simplicial_factor(n, density, seed):
    rng = np.random.default_rng(seed)
    A = sp.random(n, n, density=density, random_state=rng)
    A = sp.tril(A + A.T + n * sp.eye(n)).tocsc()
    A.sort_indices()
    for ordering in ("default", "natural", "amd"):
        c = SparseCholesky(A, supernodal="simplicial", ordering=ordering)
        c.factorize(A)
        assert mem.factor_entries(A.indptr, A.indices, c.perm) == c.nnz_L()
        # the full symmetric pattern counts the same
        F = (A + sp.triu(A.T, 1)).tocsc()
        assert mem.factor_entries(F.indptr, F.indices, c.perm) == c.nnz_L()
    # a cap stops the count early with a number above it
    assert mem.factor_entries(A.indptr, A.indices, c.perm, cap=n + 1) > n + 1


@pytest.mark.parametrize("text, expected", [
    ("8GB", 8 << 30), ("500 MB", 500 << 20), ("1.5g", int(1.5 * (1 << 30))),
    ("2048", 2048), (10**9, 10**9), (2.5e9, 2_500_000_000), (None, None),
    (float("inf"), None),
])
def test_parse_memory_limit(text, expected):
    assert mem.parse_memory_limit(text) == expected


@pytest.mark.parametrize("bad", ["lots", "-1GB", "8 parsecs", 0, -5, True, float("nan"), [1]])
def test_bad_memory_limit(bad):
    with pytest.raises(mixeff.DataError, match="memory_limit"):
        mem.parse_memory_limit(bad)


def test_lmer_bad_memory_limit_is_a_data_error():
    d = _nested()
    with pytest.raises(mixeff.DataError, match="memory_limit must be"):
        mixeff.lmer("y ~ x + (1 | b)", d, memory_limit="plenty")


def test_available_memory_reads_the_machine():
    have, source = mem.available_memory()
    assert have is not None and have > 0 and isinstance(source, str)
    assert mem.budget(12345) == (12345, "memory_limit=12.1 kB")


def test_kenward_roger_refused_with_figures_when_its_q_by_q_does_not_fit():
    fit = fit_design(build_design(parse_formula("y ~ x + (1 | a) + (1 | b)"), _nested()),
                     memory_limit="20MB")
    q = fit.structure.q
    need = mem.KR_DENSE_COPIES * 8 * q * q      # 6 x 2400^2 doubles: 264 MB
    assert need > 20 << 20
    with pytest.raises(KenwardRogerError, match=r"Kenward-Roger's dense algebra.*"
                       r"2,400 x 2,400.*Satterthwaite"):
        fit.coef_table(ddf="Kenward-Roger")
