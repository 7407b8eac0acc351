"""Streams of hinting faults: the event loop's fault path (events.run_events calls
``fault_stream_apart``). A mbind(MPOL_MF_LAZY) or a NUMA-balancing scan marks pages by
the million, and a workload touching them takes one hinting fault per page, event after
event; this kernel takes such a stream without returning to the loop between faults.
"""
import numpy as np
from numba import typeof
from numba.core import types

from ..constants import PAGE_SHIFT
from ..dtypes import (C_NUMA_HINT_FAULTS, C_NUMA_HINT_FAULTS_LOCAL, C_NUMA_PAGES_MIGRATED,
                      C_PGFAULT, C_PGMIGRATE_FAIL, C_PGMIGRATE_SUCCESS, NS_HIT, NS_LOCAL,
                      NS_OTHER, OPT_MEMORY_TIERING, OPT_NUMA_BALANCING, OPT_NUMA_STAT,
                      PTRS_PER_PMD_SHIFT, T_TID, VMA_DTYPE)
from ._jit import apart, kernel
from .access import (access_node, count_accesses, look_ahead, marked_entry, pte_index,
                     ring_block, set_dirty)
from .borrowed import borrowed, uncounted
from .fault import handle_mm_fault
from .numa import do_numa_page, pid_bit
from .numa_fixed import fits_fixed, fixed_fault, fixed_target, room_marks
from .state import block_of
from .tiering import lru_touch
from .vma import access_error

SAME_RUN_SCAN = 64      # events same_run_end compares at a time


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
    allocates neither frame nor block) is done once for the stream, the columns checked
    a window at a time (same_run_end), and where the policy gives the stream a fixed
    migration target its base pages' faults go numa_fixed's way. Returns (the last
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
    one_op, one_ts = op.size == 1, ts.size == 1
    tier = st.opts[OPT_MEMORY_TIERING] != 0
    cn = np.int64(st.cpu_node[cpu])
    vma_start, vma_end = vmas[v]["start"], vmas[v]["end"]
    # a fixed migration target (numa_fixed.py): policy, knobs and watermarks read once;
    # its faults' counters and the target's free pages kept here, stored at the end
    target, stay = fixed_target(st, vmas, v, task_pol, cn)
    balanced_above, alloc_above = room_marks(st, max(target, 0))
    if target >= 0:             # numa_fault_folio's, the same for every fault of the stream
        vmas[v]["pids"] |= np.uint64(1) << np.uint64(pid_bit(st.tasks[slot, T_TID]))
    free_target = st.free[max(target, 0)]
    balancing = st.opts[OPT_NUMA_BALANCING] != 0
    n_fixed, n_local, n_moved, n_failed = np.int64(0), np.int64(0), np.int64(0), np.int64(0)
    pf_pmd, pf_blk = np.int64(-1), np.int64(-1)
    pmd = vpn >> PTRS_PER_PMD_SHIFT                     # block b's
    # events before run_end continue the stream as to thread, CPU, VMA and op; a write
    # continues it only where the VMA allows writes (access_error)
    run_end = i + 1
    w_max = np.int64(-1 if access_error(vmas, v, 0) else (0 if access_error(vmas, v, 1) else 1))
    run_node, run_w, run_n = np.int64(-1), np.int64(0), np.int64(0)   # accesses counted in
    pi = pte_index(b, vpn)
    fl = ptes[pi]["flags"]
    while True:                                 # registers while node and op repeat
        f = np.int64(ptes[pi]["frame"])
        if target >= 0 and fits_fixed(fl, frames[f]):
            if balancing:                       # task_numa_fault reads the clock
                clock[0] = np.int64(ts[0] if one_ts else ts[i]) + ts_offset
            balanced = free_target > balanced_above         # migrate_balanced_pgdat
            room = balanced and free_target > alloc_above   # alloc_thisnode
            cur, node, moved, failed = fixed_fault(st, ptes, frames, pi, fl, f, target,
                                                   stay, room, w, cpu, slot, balancing)
            free_target -= moved
            n_fixed += 1
            n_local += cur == cn
            n_moved += moved
            n_failed += failed if balanced else 0       # alloc_thisnode failed
        else:
            clock[0] = np.int64(ts[0] if one_ts else ts[i]) + ts_offset
            vm[C_PGFAULT] += 1                  # handle_mm_fault, on a marked entry
            if target >= 0:
                st.free[target] = free_target
            do_numa_page(st, vmas, v, pi, vpn, cpu, slot, task_pol)
            if target >= 0:
                free_target = st.free[target]
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
        if i >= run_end:
            run_end = same_run_end(addr, op, cpu_col, tid_col, pid_col, i, limit, w_max,
                                   vma_start << PAGE_SHIFT, vma_end << PAGE_SHIFT, tid, pid,
                                   cpu)
            if run_end == i:
                break
        w = np.int64(op[0] if one_op else op[i])
        vpn = np.int64(addr[i]) >> PAGE_SHIFT
        if vpn >> PTRS_PER_PMD_SHIFT == pmd:
            nb = b
        else:
            pmd = vpn >> PTRS_PER_PMD_SHIFT
            nb = ring_block(ring, i, asid)
            if nb < 0:
                nb = block_of(pmd_hash, asid, pmd)
        if nb < 0 or blk_numa[nb] != 0:
            break
        next_pi = pte_index(nb, vpn)
        next_fl = ptes[next_pi]["flags"]
        if not marked_entry(next_fl, w):
            break
        b, pi, fl = nb, next_pi, next_fl
    clock[0] = np.int64(ts[0] if one_ts else ts[i - 1]) + ts_offset   # the last one run
    if target >= 0:
        st.free[target] = free_target
    if n_fixed:
        count_fixed_faults(st, target, cn, n_fixed, n_local, n_moved, n_failed)
    count_accesses(counts, tasks, slot, cn, run_node, run_w, run_n)
    return b, i


# a count over a window [lo, hi) of an event column; a one-element column holds for every
# event. The loop has no exit and indexes a slice from 0, so the compiler vectorises it
# (an index it cannot tell is not negative would make each load a gather).
@kernel(inline="always")
def n_within(col, lo, hi, start, end):
    """How many events of the window have a value in [start, end) in col (an equality:
    [value, value + 1))."""
    span = np.uint64(end - start)
    if col.size == 1:
        return (hi - lo) * np.int64(np.uint64(np.int64(col[0]) - start) < span)
    c = col[lo:hi]
    n = np.int64(0)
    for k in range(c.size):
        n += np.int64(np.uint64(np.int64(c[k]) - start) < span)
    return n


@kernel(inline="always")
def continues(addr, op, cpu_col, tid_col, pid_col, j, w_max, start, end, tid, pid, cpu):
    """Event j is by thread (tid, pid) on ``cpu``, an access (a write only if w_max is 1)
    at an address in [start, end)."""
    a = np.int64(addr[j if addr.size > 1 else 0])
    return (np.int64(op[j if op.size > 1 else 0]) <= w_max and start <= a < end
            and np.int64(tid_col[j if tid_col.size > 1 else 0]) == tid
            and np.int64(pid_col[j if pid_col.size > 1 else 0]) == pid
            and np.int64(cpu_col[j if cpu_col.size > 1 else 0]) == cpu)


@kernel
def same_run_end(addr, op, cpu_col, tid_col, pid_col, lo, limit, w_max, start, end, tid,
                 pid, cpu):
    """The first event of [lo, limit) that does not continue a stream (``continues``),
    looked for among the next SAME_RUN_SCAN events; past them when all do. The columns
    are compared a whole window at a time (loops the compiler vectorises), event by
    event only in a window that holds the end."""
    hi = min(lo + SAME_RUN_SCAN, limit)
    n = hi - lo
    if (n_within(tid_col, lo, hi, tid, tid + 1) == n
            and n_within(pid_col, lo, hi, pid, pid + 1) == n
            and n_within(cpu_col, lo, hi, cpu, cpu + 1) == n
            and n_within(op, lo, hi, 0, w_max + 1) == n             # ops are unsigned
            and n_within(addr, lo, hi, start, end) == n):
        return hi
    for j in range(lo, hi):
        if not continues(addr, op, cpu_col, tid_col, pid_col, j, w_max, start, end, tid,
                         pid, cpu):
            return j
    return hi


@kernel(inline="always")
def count_fixed_faults(st, target, cn, n, n_local, n_moved, n_failed):
    """The counters of n faults taken by numa_fixed.fixed_fault for a CPU on node cn,
    n_local of them on a folio already there, n_moved moved to ``target`` and n_failed
    not (handle_mm_fault, numa_fault_folio, alloc_thisnode's zone_statistics,
    migrate_misplaced): what numa.py's path adds one fault at a time."""
    vm = st.vm
    vm[C_PGFAULT] += n
    vm[C_NUMA_HINT_FAULTS] += n
    vm[C_NUMA_HINT_FAULTS_LOCAL] += n_local
    vm[C_PGMIGRATE_SUCCESS] += n_moved
    vm[C_NUMA_PAGES_MIGRATED] += n_moved
    vm[C_PGMIGRATE_FAIL] += n_failed
    if st.opts[OPT_NUMA_STAT] != 0:
        st.numastat[target, NS_HIT] += n_moved
        st.numastat[target, NS_LOCAL if target == cn else NS_OTHER] += n_moved


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
