"""The access path (mm/memory.c): loads and stores by a thread, through the event loop
(kernels/events.py), taking page faults as Linux does; a failed allocation OOM-kills."""
from __future__ import annotations

import threading

import numpy as np

from .constants import NEVER, PAGE_SHIFT, TASK_SIZE
from .dtypes import EV_DONE, EV_NEED_GROW, EV_SEGV
from .errors import OutOfMemory, SegmentationFault
from .kernels.events import run_events
from .kernels.hits import HIT_CELLS_SHIFT, HIT_TID_LIMIT

_scratch = threading.local()


def hit_scratch():
    """The arrays ``run_events`` counts hits in (kernels/hits.py): by tid, the thread's
    first counter + 1 (0: not counted here) and its last CPU + 1 (0: none since the last
    look), and the counters; all 0 between calls. The tid tables are 16 MiB of address
    space each, of which only the pages holding tids in use are ever touched. Made once
    per Python thread (a replay on each of several threads has its own), not part of any
    machine's state (checkpoints and pickles leave it out)."""
    trio = getattr(_scratch, "trio", None)
    if trio is None:
        trio = _scratch.trio = (np.zeros(HIT_TID_LIMIT, np.int32),
                                np.zeros(HIT_TID_LIMIT, np.int32),
                                np.zeros(1 << HIT_CELLS_SHIFT, np.int64))
    return trio


class Memory:
    """``access``: a thread's loads and stores on its current CPU at the current time."""

    def __init__(self, machine, sched):
        self.m = machine
        self.sched = sched
        self._pos = np.zeros(1, np.int64)
        self._one = {k: np.zeros(1, np.int64) for k in ("tid", "pid", "cpu", "ts")}

    def access(self, tid, addrs, write=False) -> None:
        """Loads (or stores) by thread ``tid`` on its current CPU; faults as Linux takes them.

        Raises SegmentationFault (EFAULT) at an unmapped address, or at one whose
        mapping's protection forbids the access (mprotect; earlier elements took
        effect) and OutOfMemory (ENOMEM) when an allocation failed: the process was
        OOM-killed and is gone.
        """
        m = self.m
        th = m.thread(tid)
        addrs = as_addr_array(addrs)
        ops = as_write_array(write, addrs.size)
        counts = m.scratch_counts
        counts[:] = 0
        try:
            self.touch(th, addrs, ops)
        finally:                            # accesses before a fault that failed took place
            m.access_counts += counts

    def touch(self, th, addrs, ops) -> None:
        """Run the event loop for thread ``th`` on its CPU at the current time (``ops``: 0
        read, 1 write, per address or one for all); counts go to the machine's
        scratch_counts. Raises as :meth:`access` does."""
        m = self.m
        proc = m.procs[th.pid]
        vmas = m.kernel_vmas(proc)
        m.vma_lo[proc.asid], m.vma_hi[proc.asid] = 0, len(vmas)
        one = self._one
        one["tid"][0], one["pid"][0], one["cpu"][0] = th.tid, th.pid, th.cpu
        one["ts"][0] = m.now_ns
        start = 0
        while True:
            status = run_events(m.st, vmas, m.vma_lo, m.vma_hi, m.tid_keys, m.tid_vals,
                                addrs, ops, one["cpu"], one["tid"], one["pid"], one["ts"],
                                start, addrs.size, NEVER, self._pos, m.scratch_counts, 0,
                                *hit_scratch())
            start = int(self._pos[0])
            if status != EV_NEED_GROW:
                break
            m.pt.grow()
        proc.vmas.sync_from_view()
        if status == EV_DONE:
            return
        if status == EV_SEGV:
            addr = int(addrs[start])
            v = proc.vmas.find(addr >> PAGE_SHIFT) if addr >= 0 else None
            raise SegmentationFault(proc.pid, start, addr, None if v is None else (
                "wrote to" if (ops[0] if ops.size == 1 else ops[start]) else "read"))
        self.sched.oom_kill(proc)
        raise OutOfMemory(proc.pid, f"out of memory at address {int(addrs[start]):#x} "
                                    f"(element {start}): process {proc.pid} was OOM-killed")


def as_addr_array(addrs) -> np.ndarray:
    """``addrs`` (an int or 1-D integers) as int64; an address of 2**63 or more (unsigned)
    becomes TASK_SIZE, beyond every mapping."""
    arr = np.asarray(addrs)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise TypeError(f"addrs must be an int or a 1-D array of ints, not {arr.ndim}-D")
    if arr.size and arr.dtype.kind not in "iu":
        raise TypeError(f"addrs must be integers, not {arr.dtype}")
    if arr.dtype == np.uint64:
        big = arr >= np.uint64(1 << 63)
        arr = np.where(big, np.uint64(TASK_SIZE), arr)
    return np.ascontiguousarray(arr, dtype=np.int64)


def as_write_array(write, n: int) -> np.ndarray:
    """``write`` (a bool, or one per address) as uint8 0/1."""
    w = np.asarray(write)
    if w.ndim == 0:
        if w.dtype.kind not in "bui":
            raise TypeError(f"write must be a bool or an array of bools, not {w.dtype}")
        return np.full(1, bool(w), np.uint8)
    if w.shape != (n,):
        raise ValueError(f"write has shape {w.shape}; it must be a bool or match addrs ({n},)")
    if w.dtype.kind not in "bui":
        raise TypeError(f"write must be bools, not {w.dtype}")
    if w.dtype == np.bool_ and w.flags.c_contiguous:
        return w.view(np.uint8)                 # no copy: bools are bytes of 0 or 1
    return np.ascontiguousarray(w != 0, dtype=np.uint8)
