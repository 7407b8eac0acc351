"""Is the Numba cache of the kernels cold? A new user's first simulation compiles every
kernel on its path (FIRST_RUN_SECONDS, measured: README "Performance"), silently unless
someone says so: the command line asks here and prints a one-line notice first. Paths a
default run never takes (COW, shmem and its fault-around, THP, PMD batching, tiering's
reclaim) are not on it: they compile on their first use (_jit.apart), a few seconds each.

Numba writes one index file (``<module>.<function>-<line>.py<ver>.nbi``) per cached
kernel, beside the source in ``__pycache__`` or under ``$NUMBA_CACHE_DIR`` (in a folder
named after the source folder). The event loop, ``events.run_events``, is on the path of
every simulation and is compiled with the fault path it calls: its index stands for the
whole set. Nothing here imports Numba.
"""
import os

KERNELS = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CACHE = os.path.join(KERNELS, "__pycache__")
#: the kernel whose cached index stands for the whole set (see the module docstring)
WITNESS = ("events.run_events-", ".nbi")       # <prefix><line>.py<ver><suffix>
#: what the notice says a cold start costs (measured, README "Performance": the first
#: replay of traces/lazy_4node.arrow)
FIRST_RUN_SECONDS = "about 15 s on 2 cores"


def cache_enabled():
    """Kernels are cached on disk unless FASTNUMA_NUMBA_CACHE=0 (_jit.kernel reads this)."""
    return os.environ.get("FASTNUMA_NUMBA_CACHE", "1") != "0"


def cache_dir():
    """Where Numba keeps (or would keep) the kernels' cache."""
    return os.environ.get("NUMBA_CACHE_DIR") or DEFAULT_CACHE


def cache_is_cold():
    """True when the kernels will compile rather than load: caching is off
    (FASTNUMA_NUMBA_CACHE=0) or the event loop's index file is not in the cache."""
    if not cache_enabled():
        return True
    root = cache_dir()
    if os.path.abspath(root) == DEFAULT_CACHE:       # flat: the index beside the others
        walk = [(root, (), os.listdir(root) if os.path.isdir(root) else ())]
    else:                                           # a folder per source folder
        walk = os.walk(root)
    return not any(f.startswith(WITNESS[0]) and f.endswith(WITNESS[1])
                   for _, _, files in walk for f in files)


def cold_start_notice():
    """The one-line notice for a cold cache, or None when the kernels are cached."""
    if not cache_is_cold():
        return None
    where = f"cached in {cache_dir()}" if cache_enabled() else "not cached: FASTNUMA_NUMBA_CACHE=0"
    return (f"fastnuma: compiling the simulator's kernels, {FIRST_RUN_SECONDS} the first "
            f"time ({where})")
