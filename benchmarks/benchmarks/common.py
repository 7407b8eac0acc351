"""Shared helpers of the asv suite: size profiles, machine builders, seeded address
streams, the on-disk cache and the plain-C reference (``bench-ref``).

Everything here is deterministic: streams come from ``numpy.random.default_rng(seed)``
and machines are built by the same calls every time. Benchmarks write only under
:data:`CACHE_ROOT` (or a temporary directory), never in the working directory.
"""
import functools
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import fastnuma as fn

# --------------------------------------------------------------------------- profiles
#: FASTNUMA_ASV_QUICK=1 selects the small parameter lists (CI's smoke run, read once).
QUICK = os.environ.get("FASTNUMA_ASV_QUICK", "0") == "1"


def sizes(full, quick):
    """The parameter list of the current profile: ``quick`` under FASTNUMA_ASV_QUICK=1."""
    return list(quick if QUICK else full)


PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
SEED = 20240601            # the one seed of every stream (varied per use by a salt)

# --------------------------------------------------------------------------- cache folder
#: Where generated inputs are kept between runs: $FASTNUMA_ASV_CACHE, else
#: ~/.cache/fastnuma-asv (XDG_CACHE_HOME honoured). Never the working directory.
def _cache_root():
    explicit = os.environ.get("FASTNUMA_ASV_CACHE")
    if explicit:
        return Path(explicit).expanduser().resolve()
    user_cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return (Path(user_cache).expanduser() / "fastnuma-asv").resolve()


CACHE_ROOT = _cache_root()


def _cached_array(name, make):
    """``make()`` saved as CACHE_ROOT/streams/<name>.npy (written whole or not at all)."""
    path = CACHE_ROOT / "streams" / f"{name}.npy"
    try:
        return np.load(path)
    except (OSError, ValueError, EOFError):   # absent or unreadable: make it again
        pass
    arr = make()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".npy.tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            np.save(f, arr)
        os.replace(tmp, path)
    except OSError:          # a read-only cache is not an error: the stream was made anyway
        pass
    return arr


# --------------------------------------------------------------------------- streams
STREAM_SALT = {"sequential": 1, "uniform": 2, "random": 3, "sparse": 4}


@functools.lru_cache(maxsize=4)
def page_stream(pattern, n_pages, n_events):
    """Page indices (int64[n_events]) in [0, n_pages), read-only.

    ``sequential``: sweeps 0..n_pages-1 repeatedly; ``uniform``: uniform random pages;
    ``random``: a permutation of all n_pages (n_events must equal n_pages), i.e. every page
    once in random order, as a first-touch pass.
    """
    if pattern == "sequential":
        arr = np.arange(n_events, dtype=np.int64) % n_pages
    else:
        def make():
            rng = np.random.default_rng([SEED, STREAM_SALT[pattern], n_pages, n_events])
            if pattern == "uniform":
                return rng.integers(0, n_pages, n_events, dtype=np.int64)
            if pattern == "random":
                if n_events != n_pages:
                    raise ValueError(f"'random' visits each of the {n_pages} pages once; "
                                     f"n_events={n_events} must equal n_pages")
                return rng.permutation(n_pages).astype(np.int64)
            raise ValueError(f"pattern must be one of {sorted(STREAM_SALT)}, got {pattern!r}")
        arr = _cached_array(f"{pattern}-{n_pages}-{n_events}-{SEED}", make)
    arr.setflags(write=False)
    return arr


def addresses(base, pages):
    """Byte addresses of ``pages`` (page indices) in a mapping starting at ``base``."""
    return base + (pages << PAGE_SHIFT)


@functools.lru_cache(maxsize=2)
def stream_addresses(base, pattern, n_pages, n_events):
    """:func:`page_stream` as byte addresses from ``base``, cached per process: callers
    must not modify it. Deliberately writable: Numba compiles a separate specialization
    of every kernel for read-only arrays, which warm_jit does not load."""
    return addresses(base, page_stream(pattern, n_pages, n_events))


def sparse_pages(n_pages, span_pages):
    """``n_pages`` distinct page indices scattered uniformly over [0, span_pages), sorted."""
    rng = np.random.default_rng([SEED, STREAM_SALT["sparse"], n_pages, span_pages])
    return np.sort(rng.choice(span_pages, n_pages, replace=False)).astype(np.int64)


# --------------------------------------------------------------------------- machines
def topology(n_pages, nodes=2):
    """``nodes`` sockets of 8 CPUs, each node big enough for ``n_pages`` four times over
    (a process, its fork's COW copies and room to move them)."""
    per_node = max(1 << 16, 4 * int(n_pages))
    return fn.Topology([per_node] * nodes, [range(8 * i, 8 * i + 8) for i in range(nodes)])


def new_process(n_pages, nodes=2, **knobs):
    """A fresh machine with one process (on CPU 0, node 0) and one private anonymous
    mapping of ``n_pages`` pages, nothing touched. Returns (sim, pid, base address)."""
    sim = fn.Simulator(topology(n_pages, nodes), **knobs)
    pid = sim.spawn(cpu=0)
    base = sim.mmap(pid, int(n_pages) << PAGE_SHIFT)
    return sim, pid, base


def populated_process(n_pages, nodes=2):
    """As :func:`new_process`, with every page written once: all present on node 0."""
    sim, pid, base = new_process(n_pages, nodes)
    sim.access(pid, addresses(base, np.arange(n_pages, dtype=np.int64)), write=True)
    return sim, pid, base


@functools.lru_cache(maxsize=1)
def shared_populated_process(n_pages):
    """One :func:`populated_process` per benchmark process, for benchmarks whose timed
    calls leave the page placement unchanged (loads of present pages only count)."""
    return populated_process(n_pages)


_warmed = set()
WARM_PAGES = 1 << 15


def warm_jit(*what):
    """Load (or compile) the kernels of ``what`` with a small call, once per process.

    ``"access"``: first-touch and present-page accesses; ``"mbind"``, ``"move_pages"``,
    ``"migrate_pages"``, ``"fork"`` (fork, then a COW write). Compile time thus never
    lands in a timing; bench_import.py reports it separately.
    """
    todo = [w for w in what if w not in _warmed]
    if not todo:
        return
    # big enough that the page-table arrays grow in every path (access, fork, COW), so
    # the growth helpers are loaded here too; still only milliseconds once compiled
    n = WARM_PAGES
    sim, pid, base = new_process(n)
    addrs = addresses(base, np.arange(n, dtype=np.int64))
    sim.access(pid, addrs, write=True)
    sim.access(pid, addrs)
    for w in todo:
        if w == "mbind":
            sim.mbind(pid, base, n << PAGE_SHIFT, fn.MPOL_BIND, {1}, fn.MPOL_MF_MOVE)
        elif w == "move_pages":
            sim.move_pages(pid, addrs[:64], 0)
            sim.move_pages(pid, addrs[:64])
        elif w == "migrate_pages":
            sim.migrate_pages(pid, {1}, {0})      # both ways: pages move from wherever
            sim.migrate_pages(pid, {0}, {1})      # an earlier warm-up left them
        elif w == "fork":
            child = sim.fork(pid)
            sim.access(child, addrs, write=True)
        elif w != "access":
            raise ValueError(f"warm_jit: unknown {w!r}")
        _warmed.add(w)
    _warmed.add("access")


# --------------------------------------------------------------------------- C reference
#: The plain-C reference: $FASTNUMA_BENCH_REF (bench_ref.py or the folder holding it),
#: else the ``shared`` folder beside the project root. Clones of the project alone have
#: no such folder; the ratio-to-C benchmarks are then skipped.
def _bench_ref_path():
    explicit = os.environ.get("FASTNUMA_BENCH_REF")
    if explicit:
        path = Path(explicit).expanduser().resolve()
        return path / "bench_ref.py" if path.is_dir() else path
    return Path(__file__).resolve().parents[3] / "shared" / "bench-ref" / "bench_ref.py"


BENCH_REF = _bench_ref_path()

_bench_ref = None


def load_bench_ref():
    """The ``bench_ref`` module with its C library built and loaded.

    Raises NotImplementedError (asv reports the benchmark as skipped, with the reason)
    when the file is absent or the library cannot be built (no C compiler).
    """
    global _bench_ref
    if _bench_ref is not None:
        return _bench_ref
    if not BENCH_REF.is_file():
        raise NotImplementedError(f"bench-ref not found at {BENCH_REF}: ratio to C skipped")
    spec = importlib.util.spec_from_file_location("fastnuma_bench_ref", BENCH_REF)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    try:
        spec.loader.exec_module(mod)
        mod.lib()                          # builds refkernels.c once per machine
    except (RuntimeError, OSError) as e:   # no compiler, failed build, unloadable library
        sys.modules.pop(spec.name, None)
        raise NotImplementedError(f"bench-ref at {BENCH_REF} unusable ({e}): "
                                  f"ratio to C skipped") from e
    _bench_ref = mod
    return mod


def median_rate(run, n_items, repeat=5, prepare=None):
    """Median of ``n_items / seconds`` over ``repeat`` timed calls.

    Without ``prepare``: ``run()``. With it: ``run(prepare())``, ``prepare`` untimed (for
    calls that need a fresh machine each time).
    """
    rates = []
    for _ in range(repeat):
        args = () if prepare is None else (prepare(),)
        t0 = time.perf_counter()
        run(*args)
        rates.append(n_items / (time.perf_counter() - t0))
    return float(np.median(rates))
