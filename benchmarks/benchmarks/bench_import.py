"""Start-up costs, each in a fresh interpreter (asv ``timeraw_``: the returned code runs
in a new process per sample; for a ``(stmt, setup)`` pair only ``stmt`` is timed).

- ``timeraw_import_fastnuma``: ``import fastnuma`` (numpy and Numba included; no kernel
  compiles at import).
- ``timeraw_first_access_cold_cache``: import, a small machine and its first accesses with
  NUMBA_CACHE_DIR pointing at a new empty folder, so every kernel of the access path
  compiles: the cost of a fresh checkout or of a change to ``dtypes.py``.
- ``timeraw_first_access_warm_cache``: the same with the normal cache, after one warm-up
  run in setup: what every later run pays.

With FASTNUMA_NUMBA_CACHE=0 nothing is cached and both first-access figures compile.
"""
import subprocess
import sys

#: import + a small machine + the first accesses (faults, then a present-page load)
FIRST_ACCESS = """
import numpy as np
import fastnuma as fn
sim = fn.Simulator(fn.Topology.two_socket(pages_per_node=4096))
pid = sim.spawn(cpu=0)
addr = sim.mmap(pid, 64 * 4096)
sim.access(pid, addr + 4096 * np.arange(64), write=True)
sim.access(pid, addr)
"""

#: untimed, before FIRST_ACCESS: a new empty Numba cache, removed when the process ends
COLD_CACHE_SETUP = """
import atexit, os, shutil, tempfile
cache_dir = tempfile.mkdtemp(prefix="fastnuma-asv-numba-")
os.environ["NUMBA_CACHE_DIR"] = cache_dir
atexit.register(shutil.rmtree, cache_dir, True)
"""


def timeraw_import_fastnuma():
    return "import fastnuma"


def timeraw_first_access_cold_cache():
    return FIRST_ACCESS, COLD_CACHE_SETUP


timeraw_first_access_cold_cache.number = 1
timeraw_first_access_cold_cache.repeat = 3
timeraw_first_access_cold_cache.rounds = 1
timeraw_first_access_cold_cache.warmup_time = 0     # a warm-up sample would compile again
timeraw_first_access_cold_cache.timeout = 600


def _warm_numba_cache():
    """One run of FIRST_ACCESS in a fresh interpreter: fills the normal Numba cache."""
    res = subprocess.run([sys.executable, "-c", FIRST_ACCESS], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"warm-up run failed:\n{res.stderr}")


def timeraw_first_access_warm_cache():
    return FIRST_ACCESS


timeraw_first_access_warm_cache.setup = _warm_numba_cache
timeraw_first_access_warm_cache.number = 1
timeraw_first_access_warm_cache.warmup_time = 0
timeraw_first_access_warm_cache.timeout = 300
