"""Building blocks of the synthetic scenarios (scenarios.py): segments of rows that numpy
computes per chunk, the fixed rows every scenario starts with, and the plan that shares
the ``events`` among segments."""
from dataclasses import dataclass, replace

import numpy as np

from ..constants import (MAP_ANONYMOUS, MAP_PRIVATE, OP_MMAP, OP_READ, OP_SCHED, OP_WRITE,
                         PAGE_SHIFT, PAGE_SIZE)
from .schema import COLUMNS

BASE_ADDR = 0x600000000000          # 2 MiB aligned, below the engine's own mmap area
PID = 1
MAIN_TID = 1
MAX_THREADS = 1 << 20
MMAP_FLAGS = MAP_PRIVATE | MAP_ANONYMOUS


@dataclass(frozen=True)
class Segment:
    """``n`` rows made by ``fill(rng, i)`` (``i``: int64 row indices within the segment;
    returns a dict of columns); ``width`` rows share one tick of the clock. ``n`` None:
    the segment takes its share of the rows the fixed segments leave (see plan).
    ``control`` rows are left out of bare traces."""
    n: object
    width: int
    fill: object
    control: bool = False


def cpu_of(k, nodes, cpn, shift=0):
    """CPU of thread index k (array) when thread k runs on node (k + shift) % nodes."""
    k = np.asarray(k, np.int64)
    return ((k + shift) % nodes) * cpn + (k // nodes) % cpn


def event_rows(n, *, addr, cpu, tid, op, length=0, mode=0, nodemask=0, flags=0):
    """A full set of columns for n rows (scalars broadcast), with the v1 types."""
    vals = {"addr": addr, "cpu": cpu, "op": op, "tid": tid, "pid": PID, "len": length,
            "mode": mode, "nodemask": nodemask, "flags": flags}
    out = {}
    for name, v in vals.items():
        dtype = COLUMNS[name][0]
        out[name] = (np.full(n, v, dtype) if np.ndim(v) == 0
                     else np.asarray(v).astype(dtype, copy=False))
    return out


def random_ops(rng, n, write_fraction):
    if write_fraction <= 0:
        return OP_READ
    if write_fraction >= 1:
        return OP_WRITE
    return np.where(rng.random(n) < write_fraction, OP_WRITE, OP_READ)


def page_addr(page, rng=None):
    """Address of page index ``page`` (array), plus a random 8-byte offset with ``rng``."""
    a = BASE_ADDR + (np.asarray(page, np.uint64) << np.uint64(PAGE_SHIFT))
    if rng is not None:
        a += rng.integers(0, PAGE_SIZE // 8, np.size(page), dtype=np.uint64) << np.uint64(3)
    return a


# ------------------------------------------------------------------ building blocks
def mmap_rows(p):
    return Segment(1, 1, lambda rng, i: event_rows(i.size, addr=BASE_ADDR, cpu=0, tid=MAIN_TID,
                                              op=OP_MMAP, length=p["pages"] * PAGE_SIZE,
                                              flags=MMAP_FLAGS), control=True)


def sched_rows(tids, cpus):
    """One SCHED row per thread, all at the same time."""
    tids, cpus = np.asarray(tids), np.asarray(cpus)
    return Segment(tids.size, max(1, tids.size),
                    lambda rng, i: event_rows(i.size, addr=0, cpu=cpus[i], tid=tids[i],
                                         op=OP_SCHED), control=True)


def init_writes(p):
    """The main thread writes every page in order (first touch: node 0)."""
    return Segment(p["pages"], 1, lambda rng, i: event_rows(i.size, addr=page_addr(i), cpu=0,
                                                       tid=MAIN_TID, op=OP_WRITE))


def n_threads(p, default):
    t = p["threads"] if p["threads"] is not None else default
    check_int("threads", t, 1, MAX_THREADS)
    return t


def plan(p, segments):
    """The segments with their row counts: fixed ones as given (control rows dropped when
    bare), elastic ones (n None) share the remaining ``events - fixed`` rows equally, the
    last taking the remainder."""
    segs = [s for s in segments if not (p["bare"] and s.control)]
    fixed = sum(s.n for s in segs if s.n is not None)
    elastic = [k for k, s in enumerate(segs) if s.n is None]
    if p["events"] < fixed:
        raise ValueError(f"events = {p['events']} is too few for scenario {p['scenario']!r} "
                         f"with these parameters: its fixed rows alone are {fixed}")
    share, rest = divmod(p["events"] - fixed, len(elastic))
    for k in elastic:
        segs[k] = replace(segs[k], n=share + (rest if k == elastic[-1] else 0))
    return segs


def start_rows(p, tids, cpus, init=False):
    """MMAP, the optional init writes, and one SCHED row per thread."""
    return [mmap_rows(p)] + ([init_writes(p)] if init else []) + [sched_rows(tids, cpus)]


def round_robin(i, t):
    return i % t, i // t


def check_int(name, value, lo, hi):
    """``value`` as an int in lo..hi (TypeError / ValueError naming it otherwise)."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} = {value}; allowed range is {lo}..{hi}")
    return int(value)
