"""Streams of hinting faults: the event loop's fault path (events.run_events calls
``fault_stream_apart``). A mbind(MPOL_MF_LAZY) or a NUMA-balancing scan marks pages by
the million, and a workload touching them takes one hinting fault per page, event after
event; this kernel takes such a stream without returning to the loop between faults.
"""
import numpy as np
from numba import typeof
from numba.core import types

from ..constants import OP_WRITE, PAGE_SHIFT
from ..dtypes import C_PGFAULT, OPT_MEMORY_TIERING, PTRS_PER_PMD_SHIFT, VMA_DTYPE
from ._jit import apart, kernel
from .access import (access_node, count_accesses, look_ahead, marked_entry, pte_index,
                     ring_block, set_dirty)
from .borrowed import borrowed, uncounted
from .fault import handle_mm_fault
from .numa import do_numa_page
from .state import block_of
from .tiering import lru_touch
from .vma import access_error


@kernel
def fault_stream(st, vmas, v, asid, vpn, b, cpu, slot, task_pol, write, addr, op, cpu_col,
                 tid_col, pid_col, ts, i, limit, ts_offset, counts, ring, tid, pid):
    """The fault of event i (run_events' arguments; the VMA v allows the access, the
    clock is at the event); returns (block, next event).

    A hinting fault on a marked entry (handle_mm_fault -> do_numa_page) is taken here,
    its access retried and counted, and so are the events that follow while each is one
    too: by the same thread (``tid``, ``pid``) on the same CPU, in VMA v, the entry in a
    block without a PMD mark. A mbind(MPOL_MF_LAZY) or NUMA-balancing scan leaves such
    streams; the event loop's per-event work (thread, VMA, room: a hinting fault
    allocates neither frame nor block) is done once for the stream. Returns (the last
    faulted event's block, the first event not run: the loop runs it from the top). Any
    other fault: handle_mm_fault, and (its block or FAULT_OOM, i): the loop retries event
    i's access, as the CPU does."""
    w = np.int64(write)
    # no reference counting on the loop's arrays (an inlined helper's array argument
    # costs an NRT call per event otherwise): the caller holds them (vmas: borrowed there)
    addr, op, cpu_col, tid_col, pid_col, ts, counts, ring = (
        borrowed(addr), borrowed(op), borrowed(cpu_col), borrowed(tid_col),
        borrowed(pid_col), borrowed(ts), borrowed(counts), borrowed(ring))
    ptes, frames, pmd_hash, blk_numa = st.ptes, st.frames, st.pmd_hash, st.blk_numa
    tasks, clock, vm = st.tasks, st.clock, st.vm
    if b < 0 or blk_numa[b] != 0 or not marked_entry(ptes[pte_index(b, vpn)]["flags"], w):
        return handle_mm_fault(st, vmas, v, asid, vpn, b, cpu, slot, task_pol, write), i
    one_op, one_cpu, one_tid, one_pid, one_ts = (op.size == 1, cpu_col.size == 1,
                                                 tid_col.size == 1, pid_col.size == 1,
                                                 ts.size == 1)
    tier = st.opts[OPT_MEMORY_TIERING] != 0
    cn = np.int64(st.cpu_node[cpu])
    vma_start, vma_end = vmas[v]["start"], vmas[v]["end"]
    pf_pmd, pf_blk = np.int64(-1), np.int64(-1)
    run_node, run_w, run_n = np.int64(-1), np.int64(0), np.int64(0)   # accesses counted in
    while True:                                 # registers while node and op repeat
        pi = pte_index(b, vpn)
        vm[C_PGFAULT] += 1                      # handle_mm_fault, on a marked entry
        do_numa_page(st, vmas, v, pi, vpn, cpu, slot, task_pol)
        fl, f = ptes[pi]["flags"], np.int64(ptes[pi]["frame"])    # the retried access
        set_dirty(ptes, frames, pi, fl, f, w)
        if tier:
            lru_touch(st, f)
        node = access_node(frames, fl, f, w)
        if node != run_node or w != run_w:
            if run_n:
                count_accesses(counts, tasks, slot, cn, run_node, run_w, run_n)
            run_node, run_w, run_n = node, w, np.int64(0)
        run_n += 1
        i += 1
        if i >= limit:
            break
        pf_pmd, pf_blk = look_ahead(ptes, frames, pmd_hash, ring, addr, i, limit, asid,
                                    pf_pmd, pf_blk)
        w = np.int64(op[0] if one_op else op[i])
        vpn = np.int64(addr[i]) >> PAGE_SHIFT
        if w > OP_WRITE or vpn < vma_start or vpn >= vma_end or access_error(vmas, v, w):
            break
        if (np.int64(tid_col[0] if one_tid else tid_col[i]) != tid
                or np.int64(pid_col[0] if one_pid else pid_col[i]) != pid
                or np.int64(cpu_col[0] if one_cpu else cpu_col[i]) != cpu):
            break
        nb = ring_block(ring, i, asid)
        if nb < 0:
            nb = block_of(pmd_hash, asid, vpn >> PTRS_PER_PMD_SHIFT)
        if nb < 0 or blk_numa[nb] != 0 or not marked_entry(ptes[pte_index(nb, vpn)]["flags"], w):
            break
        b = nb
        clock[0] = np.int64(ts[0] if one_ts else ts[i]) + ts_offset
    count_accesses(counts, tasks, slot, cn, run_node, run_w, run_n)
    return b, i


#: the fault path, called through a pointer: it compiles on its own, in a second process
#: while run_events compiles when the cache is cold (_jit.apart, background=True)
fault_stream_apart = apart(fault_stream, types.UniTuple(types.int64, 2), background=True)


def fault_path_types(st, events):
    """The argument types of run_events' call of the fault path, for the event columns
    ``events`` (addr, op, cpu, tid, pid, ts: the arrays run_events gets)."""
    i64 = types.int64
    vmas = uncounted(typeof(np.zeros(0, VMA_DTYPE)))          # run_events borrows them
    return ((typeof(st), vmas) + (i64,) * 7 + (types.boolean,)
            + tuple(typeof(c) for c in events)
            + (i64, i64, i64, typeof(np.zeros((1, 1, 1), np.int64)),
               typeof(np.zeros((1, 1), np.int64)), i64, i64))
