"""kernels/_background: a kernel called apart with background=True compiles in a second
process while its caller compiles, and its first call loads it from the on-disk cache;
with FASTNUMA_BACKGROUND_COMPILE=0, or when that process fails, it compiles here."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastnuma.kernels import _background

TESTS = Path(__file__).resolve().parent
SRC = Path(_background.__file__).resolve().parents[2]

SCRIPT = """
import json
import numpy as np
import background_kernels as k
result = int(k.caller(np.int64(3)))
print(json.dumps({"result": result, "hits": sum(k.square_plus._cache_hits.values()),
                  "misses": sum(k.square_plus._cache_misses.values())}))
"""

two_cpus = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2 if hasattr(os, "sched_getaffinity") else True,
    reason="background compiling needs a second CPU")


def _env(tmp_path, **extra):
    """A new process's environment: the Numba cache in tmp_path, the tests folder on the
    path, and none of the switches of the process running the tests (only ``extra``)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("FASTNUMA_BACKGROUND_CHILD", "FASTNUMA_BACKGROUND_COMPILE",
                        "FASTNUMA_NUMBA_CACHE")}
    return {**env, "NUMBA_CACHE_DIR": str(tmp_path / "cache"),
            "PYTHONPATH": os.pathsep.join([str(TESTS), str(SRC)]), **extra}


def _json_of(script, env):
    """The last line ``script`` prints in a new process, as JSON."""
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _run(tmp_path, **env):
    """SCRIPT in a new process with an empty Numba cache in tmp_path."""
    return _json_of(SCRIPT, _env(tmp_path, **env))


@two_cpus
def test_the_second_process_compiles_and_the_first_call_loads_it(tmp_path):
    got = _run(tmp_path)
    assert got == {"result": 11, "hits": 1, "misses": 0}


def test_turned_off_it_compiles_here(tmp_path):
    got = _run(tmp_path, FASTNUMA_BACKGROUND_COMPILE="0")
    assert got == {"result": 11, "hits": 0, "misses": 1}


def test_without_the_cache_it_compiles_here(tmp_path):
    """No cache, no channel between the processes: no second process (Numba's null cache
    counts a miss)."""
    got = _run(tmp_path, FASTNUMA_NUMBA_CACHE="0")
    assert got == {"result": 11, "hits": 0, "misses": 1}
    assert not list((tmp_path / "cache").rglob("*.nbi"))


def test_a_failed_second_process_is_waited_for_and_left(monkeypatch):
    """A child that cannot import the kernel's module exits; wait() returns and the
    caller compiles as without it."""

    class NoSuchKernel:
        class py_func:
            __module__ = "fastnuma_no_such_module"
            __qualname__ = "nothing"

    monkeypatch.setattr(_background, "enabled", lambda: True)
    monkeypatch.setattr(_background, "on_disk", lambda disp: False)
    key = ("test-key", ("no", "types"))
    _background.start(NoSuchKernel, *key)
    proc = _background._RUNNING[key]
    _background.wait(*key)
    assert proc.returncode not in (0, None)
    assert key not in _background._RUNNING


ATTEMPTS = """
import json
from numba.core import types
import background_kernels as k
from fastnuma.kernels import _background
attempts = []
def popen(*args, **kwargs):
    attempts.append(args)
    raise OSError("not started in this test")
_background.subprocess.Popen = popen
_background.start(k.square_plus, "test-key", (types.int64, types.int64))
print(json.dumps({"attempts": len(attempts), "on_disk": _background.on_disk(k.square_plus)}))
"""


@two_cpus
def test_nothing_starts_for_a_kernel_in_the_cache(tmp_path):
    """Once the kernel is in the cache (a first run compiled it), start() does not start a
    process: the first call will load it."""
    assert _json_of(ATTEMPTS, _env(tmp_path)) == {"attempts": 1, "on_disk": False}
    _run(tmp_path, FASTNUMA_BACKGROUND_COMPILE="0")             # compiles and caches it
    assert _json_of(ATTEMPTS, _env(tmp_path)) == {"attempts": 0, "on_disk": True}


def test_the_types_started_ahead_are_the_event_loops(monkeypatch):
    """The replay starts the fault path for the types run_events calls it with (else the
    second process would compile a signature nobody calls)."""
    import fastnuma as fn
    from fastnuma import replay
    from fastnuma.kernels.fault_stream import fault_path_types, fault_stream
    started = []
    monkeypatch.setattr(replay, "compile_fault_path_ahead",
                        lambda st, columns: started.append(fault_path_types(st, columns)))
    sim = fn.Simulator(fn.Topology.uniform(nodes=4, cpus_per_node=4, pages_per_node=256))
    report = sim.replay(str(TESTS.parent / "traces" / "lazy_4node.arrow"))
    assert report.vmstat["numa_hint_faults"] == 512            # the fault path ran
    assert started and all(t in fault_stream.signatures for t in started)
