"""The derivation cache: hits give the same derivatives, keys follow everything a derivation depends on, --no-cache
and `cache clear` do what they say, a corrupt entry is a miss."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from verifier.case.validate import case_from_expression
from verifier.language.ops import ELEMENTWISE, OPS, Op, register_op
from verifier.reference import cache
from verifier.reference.expanded.reference import Reference


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADVERIFY_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setattr(cache.STATE, "enabled", True)
    monkeypatch.setattr(cache.STATE, "hits", 0)
    monkeypatch.setattr(cache.STATE, "misses", 0)
    monkeypatch.setattr(cache, "_RECENT", {})
    return tmp_path / "c"


def _case(expr: str = "sin(x) * exp(y)"):
    return case_from_expression(expr, {"x": [0.5, 1.5], "y": 2.0}, name="c")


def test_second_derivation_is_a_hit_with_equal_expressions(fresh_cache):
    first = Reference(_case()).derivatives(2)
    misses = cache.STATE.misses
    assert misses >= 3 and cache.STATE.hits == 0  # expansion, jacobian, order 2
    second = Reference(_case()).derivatives(2)
    assert cache.STATE.misses == misses and cache.STATE.hits >= 3
    assert second == first
    assert len(cache.entries()) == misses


def test_keys_follow_shape_requires_grad_and_function(fresh_cache):
    Reference(_case()).jacobian()
    base = cache.STATE.misses
    Reference(case_from_expression("sin(x) * exp(y)", {"x": [0.5, 1.5, 2.5], "y": 2.0}, name="c")).jacobian()
    assert cache.STATE.misses == base + 2  # another shape: expansion and jacobian are new
    Reference(_case("sin(x) * exp(2*y)")).jacobian()
    assert cache.STATE.misses == base + 4


def test_a_reregistered_op_does_not_reuse_the_old_meaning(fresh_cache):
    register_op(Op("cachetwice", ELEMENTWISE, (1, 1), lambda S, x: 2 * x, lambda T, x: 2 * x))
    try:
        a = Reference(case_from_expression("cachetwice(x)", {"x": 1.0}, name="c")).jacobian()
        register_op(Op("cachetwice", ELEMENTWISE, (1, 1), lambda S, x: 3 * x, lambda T, x: 3 * x), replace=True)
        b = Reference(case_from_expression("cachetwice(x)", {"x": 1.0}, name="c")).jacobian()
    finally:
        OPS.pop("cachetwice", None)
    assert (a[0][0], b[0][0]) == (2, 3)


def test_disabled_cache_writes_nothing(fresh_cache, monkeypatch):
    monkeypatch.setattr(cache.STATE, "enabled", False)
    Reference(_case()).derivatives(2)
    assert not fresh_cache.exists()


def test_a_corrupt_entry_is_a_miss_and_is_rewritten(fresh_cache):
    expected = Reference(_case()).jacobian()
    for path in cache.entries():
        path.write_bytes(b"not a pickle")
    cache._RECENT.clear()  # a new process: only the files
    assert Reference(_case()).jacobian() == expected
    assert cache.STATE.hits == 0
    assert all(p.read_bytes() != b"not a pickle" for p in cache.entries())


def test_cli_no_cache_and_clear(tmp_path, write_case):
    env = {"GRADVERIFY_CACHE_DIR": str(tmp_path / "c"), "PATH": ""}
    path = write_case("name: c\ninputs: {x: 0.5}\nfunction: sin(x)**2\nchecks: [backward]\n")
    run = [sys.executable, "-m", "verifier"]
    out = subprocess.run(run + ["run", str(path), "--no-cache", "--no-progress"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert not (tmp_path / "c").exists()
    subprocess.run(run + ["run", str(path), "--no-progress"], env=env, check=True, capture_output=True)
    info = subprocess.run(run + ["cache"], env=env, capture_output=True, text=True, check=True).stdout
    assert "2 entries" in info
    (tmp_path / "c" / "keep.txt").write_text("not ours")
    cleared = subprocess.run(run + ["cache", "clear"], env=env, capture_output=True, text=True, check=True).stdout
    assert cleared.startswith("removed 2 entries")
    assert (tmp_path / "c" / "keep.txt").exists() and not list((tmp_path / "c").glob("*/*.pkl"))


def test_keys_follow_the_deriving_code(fresh_cache, monkeypatch):
    # regression: a fix to a derivation (same version number) kept serving the old, wrong closed form from the cache
    Reference(_case()).jacobian()
    base = cache.STATE.misses
    monkeypatch.setattr(cache, "_CODE", ["another-version-of-the-code"])
    cache._RECENT.clear()
    Reference(_case()).jacobian()
    assert cache.STATE.misses == base + 2


def test_the_cache_has_a_size_bound_and_keeps_the_recently_used(fresh_cache, monkeypatch):
    import os
    import time

    for k, expr in enumerate(["sin(x) * exp(y)", "cos(x) + y", "tanh(x) * y", "exp(x) - y**2", "log(x) * y"]):
        Reference(_case(expr)).jacobian()
        for p in cache.entries():  # spread the modification times: the order of use
            if p.stat().st_mtime > time.time() - 1:
                os.utime(p, (time.time() - 100 + k, time.time() - 100 + k))
    sizes = {p: p.stat().st_size for p in cache.entries()}
    newest = max(cache.entries(), key=lambda p: p.stat().st_mtime)
    limit = sum(sizes.values()) // 2
    removed, freed = cache.prune(limit)
    left = cache.entries()
    assert removed and sum(p.stat().st_size for p in left) <= limit and newest in left
    assert freed == sum(size for p, size in sizes.items() if p not in left)


def test_concurrent_runs_on_a_cold_cache_agree(tmp_path):
    import subprocess
    import sys

    from .conftest import CASES, ROOT

    env = {**os.environ, "GRADVERIFY_CACHE_DIR": str(tmp_path / "shared")}
    runs = [subprocess.Popen([sys.executable, "-m", "verifier", "run", str(CASES / "seed"), "--no-progress"],
                             stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env) for _ in range(3)]
    summaries = [p.communicate(timeout=300)[0].strip().splitlines()[-1].rsplit(" in ", 1)[0] for p in runs]
    assert len(set(summaries)) == 1 and "passed" in summaries[0], summaries
    assert all(p.returncode == 0 for p in runs)
