"""kernels/_jit.apart: a kernel called through a pointer, compiled on its first call and
not into its caller (the cold start's rare fault paths: COW, shmem, THP, PMD batching,
tiering's direct reclaim)."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numba import types

from fastnuma.kernels._jit import apart, kernel

SRC = os.path.join(os.path.dirname(__file__), "..", "src")
TRACES = os.path.join(os.path.dirname(__file__), "..", "traces")


@kernel(cache=False)
def bump(a, i, by):
    if by < 0:
        raise ValueError("negative step")
    a[i] += by
    return np.int64(a[i])


bump_apart = apart(bump, types.int64)
bump_apart_wrong = apart(bump, types.float64)


@kernel(cache=False)
def sum_bumped(a, by):
    """Elements above 2 bumped by ``by`` (through the pointer), all summed."""
    s = np.int64(0)
    for i in range(a.size):
        s += bump_apart(a, i, by) if a[i] > 2 else a[i]
    return s


@kernel(cache=False)
def sum_bumped_wrong(a):
    s = np.int64(0)
    for i in range(a.size):
        s += np.int64(bump_apart_wrong(a, i, 1))
    return s


def sum_bumped_reference(a, by):
    s = 0
    for i in range(a.size):
        if a[i] > 2:
            a[i] += by
        s += int(a[i])
    return s


def test_same_result_and_effects_as_the_plain_call():
    for by in (0, 1, 7):
        a, b = np.arange(10, dtype=np.int64), np.arange(10, dtype=np.int64)
        assert sum_bumped(a, by) == sum_bumped_reference(b, by)
        assert np.array_equal(a, b)


def test_compiled_at_the_first_call_not_with_the_caller():
    @kernel(cache=False)
    def rare(a):
        a[0] = -5
        return np.int64(1)

    rare_apart = apart(rare, types.int64)

    @kernel(cache=False)
    def common(a, flag):
        return rare_apart(a) if flag else np.int64(0)

    a = np.zeros(3, np.int64)
    assert common(a, False) == 0
    assert rare.signatures == []                  # the caller compiled without it
    assert common(a, True) == 1 and a[0] == -5
    assert len(rare.signatures) == 1


def test_an_exception_in_the_callee_reaches_python():
    with pytest.raises(ValueError, match="negative step"):
        sum_bumped(np.arange(5, dtype=np.int64), -1)


def test_a_wrong_return_type_is_an_error_not_a_crash():
    with pytest.raises(TypeError, match="returns int64, not float64"):
        sum_bumped_wrong(np.arange(3, dtype=np.int64))


MODULE = """
import numpy as np
from numba import types
from fastnuma.kernels._jit import apart, kernel

@kernel
def rare(a, k):
    a[k] *= 3
    return np.int64(a[k])

rare_apart = apart(rare, types.int64)

@kernel
def common(a):
    s = np.int64(0)
    for k in range(a.size):
        s += rare_apart(a, k) if k % 2 else a[k]
    return s
"""


def test_callers_cached_on_disk_call_it_in_a_new_process(tmp_path):
    (tmp_path / "apart_mod.py").write_text(textwrap.dedent(MODULE))
    cache = tmp_path / "cache"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache),
               PYTHONPATH=os.pathsep.join([str(tmp_path), SRC]))
    env.pop("FASTNUMA_NUMBA_CACHE", None)
    code = ("import numpy as np, apart_mod as m; a = np.arange(6, dtype=np.int64); "
            "print(m.common(a), list(a), len(m.common.stats.cache_hits))")
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, check=True).stdout.split() for _ in range(2)]
    expected = str(0 + 3 + 2 + 9 + 4 + 15)
    assert runs[0][0] == runs[1][0] == expected
    assert runs[0][-1] == "0" and runs[1][-1] == "1"      # compiled, then loaded


@pytest.mark.slow
def test_a_default_replay_compiles_no_rare_fault_path(tmp_path):
    """traces/lazy_4node.arrow on an empty cache: the event loop and the fault path with
    its stream of hinting faults compile; COW, shmem, THP, PMD batching, handle_mm_fault's
    own hinting fault and direct reclaim do not."""
    code = (
        "import fastnuma as fn, fastnuma.kernels.fault as f, fastnuma.kernels.numa as nu, "
        "fastnuma.kernels.reclaim as r, fastnuma.kernels.fault_stream as fs\n"
        f"from fastnuma.cli import main; main(['replay', {os.path.join(TRACES, 'lazy_4node.arrow')!r}, "
        "'--no-progress'])\n"
        "print('RARE', [len(k.signatures) for k in (f.do_wp_page, f.fault_shm, "
        "f.fault_huge_anon, nu.do_pmd_numa_page, nu.do_numa_page, r.try_to_free_pages)], "
        "len(fs.fault_stream.signatures) > 0)\n")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), PYTHONPATH=SRC)
    env.pop("FASTNUMA_NUMBA_CACHE", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert "numa_hint_faults" in out
    assert "RARE [0, 0, 0, 0, 0, 0] True" in out
