"""Compile a kernel called apart in a second process while this one compiles its caller.

Numba compiles one function at a time per process (one compiler lock), so a cold start
uses one core of two. The fault path is the largest kernel of a replay (7.6 s of a 21 s
cold start: benchmarks/README.md, "2026-12-07, fourth") and the event loop calls it
through a pointer (``_jit.apart(fault_stream, ..., background=True)``): when Numba
types that call, the argument types are known, and ``start`` hands them to a new Python
process that compiles the kernel into the on-disk cache while this process compiles the
event loop (a replay starts it sooner, from the types it will pass:
``events.compile_fault_path_ahead``). The first call of the kernel ``wait``-s for that
process and loads the kernel from the cache; if the process failed, it compiles here as
it would have anyway. The first replay of traces/lazy_4node.arrow took 11.4-13.7 s with
it and 19.7-20.9 s without (alternated, 2026-12-07).

Only with the on-disk cache on (FASTNUMA_NUMBA_CACHE, the one channel between the two
processes), more than one CPU to run on, and FASTNUMA_BACKGROUND_COMPILE not ``0``. A
process still compiling when this one exits is stopped.
"""
import atexit
import importlib
import os
import pickle
import subprocess
import sys

from numba.core.caching import FunctionCache

from .cache import cache_enabled

#: (kernel key, argument types) -> the process compiling it
_RUNNING = {}
_CHILD_FLAG = "FASTNUMA_BACKGROUND_CHILD"
#: the child's first lines: the parent's sys.path, then the kernel's module
_BOOT = ("import pickle, sys; d = pickle.load(sys.stdin.buffer); sys.path[:] = d['path']; "
         "from fastnuma.kernels._background import child; child(d)")


def enabled():
    """Compile in the background here? (see the module docstring)"""
    if not cache_enabled() or os.environ.get("FASTNUMA_BACKGROUND_COMPILE", "1") == "0":
        return False
    if os.environ.get(_CHILD_FLAG):
        return False
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) > 1
    return (os.cpu_count() or 1) > 1


def on_disk(disp):
    """Has Numba's on-disk cache an index for kernel ``disp``, where Numba itself looks
    (beside the source, $NUMBA_CACHE_DIR, or its user-wide fallback; index files are
    named ``<module>.<function>-<line>.py<ver>.nbi``, as cache.py reads them)? Then it
    loads rather than compiles, and there is nothing to start. True when it cannot tell."""
    func = disp.py_func
    prefix = f"{func.__module__.rsplit('.', 1)[-1]}.{func.__qualname__}-"
    try:
        where = FunctionCache(func).cache_path
        return any(f.startswith(prefix) and f.endswith(".nbi") for f in os.listdir(where))
    except (OSError, RuntimeError):          # no cache folder, or no place for one
        return True


def start(disp, key, argtys):
    """Start compiling kernel ``disp`` (a module-level dispatcher; ``key``: its _jit.apart
    key) for ``argtys`` in a second process, unless one already is or background
    compiling is off."""
    if (key, argtys) in _RUNNING or not enabled() or on_disk(disp):
        return
    try:
        request = pickle.dumps({"path": list(sys.path), "module": disp.py_func.__module__,
                                "name": disp.py_func.__qualname__,
                                "types": pickle.dumps(argtys)})
        proc = subprocess.Popen([sys.executable, "-c", _BOOT], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, _CHILD_FLAG: "1"})
    except (OSError, pickle.PicklingError, TypeError, AttributeError):
        return                               # compiled here at its first call instead
    try:
        proc.stdin.write(request)
        proc.stdin.close()
    except OSError:                          # the child died at once: wait() reaps it
        pass
    _RUNNING[(key, argtys)] = proc


def wait(key, argtys):
    """Wait for the process compiling ``key`` for ``argtys``, if there is one (a second
    thread calling the kernel first waits too, rather than compiling it again)."""
    proc = _RUNNING.get((key, argtys))
    if proc is not None:
        proc.wait()
        _RUNNING.pop((key, argtys), None)


@atexit.register
def _stop_all():
    for proc in list(_RUNNING.values()):
        proc.kill()
        proc.wait()
    _RUNNING.clear()


if hasattr(os, "register_at_fork"):     # a forked child does not own its parent's compiles
    os.register_at_fork(after_in_child=_RUNNING.clear)


def child(request):
    """The second process: compile the kernel, which writes it to the on-disk cache."""
    disp = getattr(importlib.import_module(request["module"]), request["name"])
    disp.compile(pickle.loads(request["types"]))
