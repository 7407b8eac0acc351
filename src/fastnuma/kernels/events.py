"""The hot loop: a stream of events (loads and stores, by threads on CPUs, at times) run
against the page tables. ``sim.access`` and trace replay both use it.

Present, accessible pages are counted inline, by the node cached in the PTE when it is
there (dtypes.PTE_NODE_SHIFT: one memory load per access), else by the frame's; anything
else takes a fault (fault.py, numa.py) and the access is retried, as the CPU does. After a
present page, the events that follow it by the same thread on the same CPU in the same
PMD run in a short inner loop (a run: a sequential stream's common case). The
loop returns to Python for what Python owns: a control event (op > WRITE), a thread seen
for the first time, a time at which NUMA-balancing ticks are due, a segfault, an OOM, or
a table that needs room.
"""
import numpy as np

from ..constants import OP_WRITE, PAGE_SHIFT, TASK_SIZE
from ..dtypes import (CTL_HCOUNT, CTL_NBLOCKS, CTL_NFRAMES, EV_BAD_CPU, EV_BAD_PID, EV_CONTROL,
                      EV_DONE, EV_NEED_GROW, EV_NEW_THREAD, EV_OOM, EV_SEGV, EV_TIME,
                      FRAME_PTE_DIRTY, OPT_MEMORY_TIERING, PTE_DIRTY, PTE_NODE_SHIFT, PTE_NUMA,
                      PTE_PRESENT, PTE_WRITE, PTRS_PER_PMD, PTRS_PER_PMD_SHIFT, ROOM_BLOCKS, ROOM_FRAMES,
                      T_ACC_LOCAL, T_ACC_REMOTE, T_ASID, T_CPU, T_PID, T_POLICY, ZERO_PAGE_NODE)
from ._jit import kernel, prefetch
from .fault import handle_mm_fault
from .state import borrowed, lookup_block
from .tiering import lru_touch
from .vma import access_error, find_vma_in

PREFETCH_AHEAD = 16           # events of look-ahead: PTEs at i+16, frames at i+8
RING = 2 * PREFETCH_AHEAD     # look-ahead blocks kept per event (event i+16 must not
                              # overwrite event i's entry before it is used)
# PMD indices of the user address space (47-bit addresses: 2**26 PMDs); a larger or a
# negative PMD index is a segfault
USER_PMD_BITS = (TASK_SIZE.bit_length() - 1) - PAGE_SHIFT - PTRS_PER_PMD_SHIFT
PTE_INDEX_MASK = PTRS_PER_PMD - 1   # a page's entry in its PMD's PTE block
NODE_BYTE = 0xFF              # PTE bits 8-15 hold the node + 1 (dtypes.PTE_NODE_SHIFT)
TID_HASH_MULT = 0x9E3779B97F4A7C15   # Fibonacci hashing of thread ids (engine.py's table)
TID_HASH_SHIFT = 40
# the PTE bits a run's access checks: present and not PROT_NONE; a write also writable
# and already dirty (else the CPU sets the dirty bit: the loop's general path)
RUN_READ = PTE_PRESENT | PTE_NUMA
RUN_WRITE = PTE_PRESENT | PTE_NUMA | PTE_WRITE | PTE_DIRTY


@kernel(inline="always")
def cached_block(pmd_hash, asid, vpn, pmd, blk):
    """(pmd, block) of vpn, looked up only when its PMD differs from the cached ``pmd``;
    block -1 when there is none (or vpn is beyond 47 bits)."""
    if vpn >> PTRS_PER_PMD_SHIFT == pmd:
        return pmd, blk
    pmd = vpn >> PTRS_PER_PMD_SHIFT
    return pmd, (lookup_block(pmd_hash, asid, pmd) if pmd >> USER_PMD_BITS == 0 else np.int64(-1))


@kernel(inline="always")
def count_accesses(counts, cn, node, w, n):
    """Add n accesses (w: 0 read, 1 write) from CPU node cn to memory on ``node`` to the
    access matrix; returns how many were local (n or 0, computed without a branch: a
    mispredicted branch on a loaded value waits for its cache miss)."""
    counts[cn, node, w] += n
    return n * np.int64(node == cn)


@kernel(inline="always")
def tid_hash(tid, mask):
    """First probe of ``tid`` in the thread table (open addressing, keys -1 = empty)."""
    return np.int64((np.uint64(tid) * np.uint64(TID_HASH_MULT))
                    >> np.uint64(TID_HASH_SHIFT)) & mask


@kernel(inline="always")
def first_at_or_after(ts, start, stop, t):
    """The first index in [start, stop) whose ts is >= t, else stop (ts never decreases;
    the trace reader checks it)."""
    lo, hi = start, stop
    while lo < hi:
        mid = (lo + hi) >> 1
        if np.int64(ts[mid]) < t:
            lo = mid + 1
        else:
            hi = mid
    return lo


@kernel
def run_events(st, vmas, vma_lo, vma_hi, tid_keys, tid_vals, addr, op, cpu, tid, pid, ts,
               start, stop, stop_ts, pos, counts, ts_offset):
    """Run events [start, stop); returns an EV_* status, the index reached in pos[0].

    Every per-event column may have one element, which then holds for all (``sim.access``
    passes one thread, CPU, time and often one op). ``vmas`` holds the VMA rows of every
    address space, those of asid a being vmas[vma_lo[a]:vma_hi[a]]. ``counts``: int64
    [cpu node, memory node, read/write], accumulated; the thread table (st.tasks) gets the
    thread's CPU and its local/remote counts. Events with ts >= stop_ts are not run; an
    event runs at simulated time ts + ts_offset.

    Inside the loop no array variable is reassigned (or sliced) and no inlined helper
    that takes arrays has a loop of its own: either makes Numba count references per
    event, an atomic operation that also stops the CPU from overlapping the events' cache
    misses (measured: present-page events of interleaved threads 2x slower).
    """
    vmas = borrowed(vmas)       # the fault path passes it on: no reference counting there
    ptes, frames, pmd_hash, blk_numa = st.ptes, st.frames, st.pmd_hash, st.blk_numa
    tasks, cpu_node, clock, ctl = st.tasks, st.cpu_node, st.clock, st.ctl
    blk_cap, frame_cap, hash_cap = st.blk_key.size, frames.size, pmd_hash.shape[0]
    n_cpus = cpu_node.size
    one_op, one_cpu, one_tid, one_pid, one_ts = (op.size == 1, cpu.size == 1, tid.size == 1,
                                                 pid.size == 1, ts.size == 1)
    per_event = not (one_cpu and one_tid and one_pid and one_ts)   # else checked once
    last_tid, last_pid, slot, asid = np.int64(-1), np.int64(-1), np.int64(-1), np.int64(-1)
    task_pol = np.int64(-1)
    vlo, vhi = np.int64(0), np.int64(0)     # the current address space's VMA rows
    c, cn = np.int64(-1), np.int64(-1)
    acc_local, acc_remote = np.int64(0), np.int64(0)   # the current thread's, flushed on switch
    cur_pmd, cur_blk, cur_numa = np.int64(-1), np.int64(-1), False
    hint = np.int64(0)
    # prefetch frames too (below) while recent events read them: a fault did, or a present
    # page had no node cached in its PTE; ``faulted``: the current event took a fault
    frames_ahead, faulted = True, False
    # blocks of the next PREFETCH_AHEAD events, looked up once, in the address space of
    # the thread current at look-up time (ring_asid): used only when it is the event's,
    # and only by the event it was looked up for (ring_event: a run, below, skips the
    # look-ahead, so a slot may still hold an entry of an event RING events back)
    ring = np.full(RING, -1, np.int64)
    ring_asid = np.full(RING, -1, np.int64)
    ring_event = np.full(RING, -1, np.int64)
    pf_pmd, pf_blk = np.int64(-1), np.int64(-1)
    tid_mask = tid_keys.size - 1
    # memory tiering: every access stamps its frame (the LRU clock, docs/tiering.md §7);
    # runs are off then, so that each access passes the stamp below (tiering hook)
    tier = st.opts[OPT_MEMORY_TIERING] != 0
    status = EV_DONE
    # events at or after stop_ts do not run: one search instead of a check per event
    limit = first_at_or_after(ts, start, stop, stop_ts) if not one_ts else (
        start if start < stop and np.int64(ts[0]) >= stop_ts else stop)
    i = start
    while i < limit:
        w = np.int64(op[0] if one_op else op[i])
        if w > OP_WRITE:
            status = EV_CONTROL
            break
        if per_event or slot < 0:          # (sim.access: one thread, CPU and time)
            tt = np.int64(tid[0] if one_tid else tid[i])
            pp = np.int64(pid[0] if one_pid else pid[i])
            if tt != last_tid or pp != last_pid:
                s = tid_hash(tt, tid_mask)
                while tid_keys[s] != tt and tid_keys[s] != -1:
                    s = (s + 1) & tid_mask
                s = np.int64(tid_vals[s]) if tid_keys[s] == tt else np.int64(-1)
                if s < 0:
                    status = EV_NEW_THREAD
                    break
                if tasks[s, T_PID] != pp:
                    status = EV_BAD_PID
                    break
                if slot >= 0:
                    tasks[slot, T_CPU] = c
                    tasks[slot, T_ACC_LOCAL] += acc_local
                    tasks[slot, T_ACC_REMOTE] += acc_remote
                acc_local, acc_remote = np.int64(0), np.int64(0)
                slot, last_tid, last_pid = s, tt, pp
                task_pol = tasks[s, T_POLICY]
                if tasks[s, T_ASID] != asid:
                    asid = tasks[s, T_ASID]
                    vlo, vhi = np.int64(vma_lo[asid]), np.int64(vma_hi[asid])
                    cur_pmd, cur_blk, cur_numa, hint = np.int64(-1), np.int64(-1), False, vlo
                    pf_pmd = np.int64(-1)
            cc = np.int64(cpu[0] if one_cpu else cpu[i])
            if cc != c:
                if cc < 0 or cc >= n_cpus or cpu_node[cc] < 0:
                    status = EV_BAD_CPU
                    break
                c = cc
                cn = np.int64(cpu_node[cc])
        # software prefetch: the PTE PREFETCH_AHEAD events ahead, the frame half as far
        j = i + PREFETCH_AHEAD
        if j < stop:
            vpn_j = np.int64(addr[j]) >> PAGE_SHIFT
            pf_pmd, pf_blk = cached_block(pmd_hash, asid, vpn_j, pf_pmd, pf_blk)
            ring[j & (RING - 1)] = pf_blk
            ring_asid[j & (RING - 1)] = asid
            ring_event[j & (RING - 1)] = j
            if pf_blk >= 0:
                prefetch(ptes, (pf_blk << PTRS_PER_PMD_SHIFT) + (vpn_j & PTE_INDEX_MASK))
        j = i + PREFETCH_AHEAD // 2
        if frames_ahead and j < stop:
            b2 = ring[j & (RING - 1)]
            if b2 >= 0 and ring_event[j & (RING - 1)] == j:
                vpn_j = np.int64(addr[j]) >> PAGE_SHIFT
                f = ptes[(b2 << PTRS_PER_PMD_SHIFT) + (vpn_j & PTE_INDEX_MASK)]["frame"]
                if f >= 0:
                    prefetch(frames, f)
        vpn = np.int64(addr[i]) >> PAGE_SHIFT
        pmd = vpn >> PTRS_PER_PMD_SHIFT
        if pmd != cur_pmd:
            if pmd >> USER_PMD_BITS != 0:                # negative, or beyond 47 bits
                status = EV_SEGV
                break
            k = i & (RING - 1)
            if ring_event[k] == i and ring_asid[k] == asid and ring[k] >= 0:
                cur_blk = ring[k]
            else:
                cur_blk = lookup_block(pmd_hash, asid, pmd)
            cur_pmd = pmd
            cur_numa = cur_blk >= 0 and blk_numa[cur_blk] != 0
        if cur_blk >= 0 and not cur_numa:
            pi = (cur_blk << PTRS_PER_PMD_SHIFT) + (vpn & PTE_INDEX_MASK)
            fl = ptes[pi]["flags"]
            if fl & (PTE_PRESENT | PTE_NUMA) == PTE_PRESENT and (w == 0 or fl & PTE_WRITE):
                node = (np.int64(fl >> PTE_NODE_SHIFT) & NODE_BYTE) - 1   # cached in the PTE
                frames_ahead = node < 0 or faulted
                if node < 0:                     # not cached (dtypes): the frame says
                    f = ptes[pi]["frame"]
                    node = ZERO_PAGE_NODE if f < 0 else np.int64(frames[f]["node"])
                if w and not fl & PTE_DIRTY:    # the CPU sets the dirty bit (shared memory)
                    ptes[pi]["flags"] = fl | PTE_DIRTY
                    frames[ptes[pi]["frame"]]["flags"] |= FRAME_PTE_DIRTY
                if tier:
                    lru_touch(st, np.int64(ptes[pi]["frame"]))
                i += 1
                # A run: the next events of this thread, on this CPU, in this PMD, to
                # present pages whose PTE caches the node and allows the access as it is
                # (a write: writable and already dirty) need nothing else. This event and
                # the run are counted in a register while node and op repeat, and added
                # to ``counts`` when they change (an add to the same cell per event is a
                # store-to-load chain: half the time of a sequential stream, measured).
                # No look-ahead either: a run's PTEs are near each other. No run is tried
                # right after a fault: faults come in streams (first touches, hinting
                # faults), and the try cost sequential hinting faults 10-20% (measured).
                # Known cost: random present pages of a single thread take about 25%
                # longer with this loop here (benchmarks/README.md, 2026-11-26 third
                # part, has what was tried).
                run_node, run_w, run_n = node, w, np.int64(1)
                while i < limit and not faulted and not tier:
                    vpn = np.int64(addr[i]) >> PAGE_SHIFT
                    if vpn >> PTRS_PER_PMD_SHIFT != cur_pmd:
                        break
                    w = np.int64(op[0] if one_op else op[i])
                    if w > OP_WRITE:
                        break
                    if per_event and (np.int64(tid[0] if one_tid else tid[i]) != last_tid
                                      or np.int64(pid[0] if one_pid else pid[i]) != last_pid
                                      or np.int64(cpu[0] if one_cpu else cpu[i]) != c):
                        break
                    fl = ptes[(cur_blk << PTRS_PER_PMD_SHIFT) + (vpn & PTE_INDEX_MASK)]["flags"]
                    need = RUN_WRITE if w else RUN_READ
                    node = (np.int64(fl >> PTE_NODE_SHIFT) & NODE_BYTE) - 1
                    if fl & need != need & ~PTE_NUMA or node < 0:
                        break
                    if node != run_node or w != run_w:
                        local = count_accesses(counts, cn, run_node, run_w, run_n)
                        acc_local += local
                        acc_remote += run_n - local
                        run_node, run_w, run_n = node, w, np.int64(0)
                    run_n += 1
                    i += 1
                local = count_accesses(counts, cn, run_node, run_w, run_n)
                acc_local += local
                acc_remote += run_n - local
                faulted = False
                continue
        v = find_vma_in(vmas, vlo, vhi, vpn, hint)
        if v < 0 or access_error(vmas, v, w):      # no VMA, or its protection: SIGSEGV
            status = EV_SEGV
            break
        hint = v
        if (ctl[CTL_NBLOCKS] + ROOM_BLOCKS > blk_cap or ctl[CTL_NFRAMES] + ROOM_FRAMES > frame_cap
                or 2 * (ctl[CTL_HCOUNT] + ROOM_BLOCKS) > hash_cap):      # room for one more fault
            status = EV_NEED_GROW
            break
        clock[0] = np.int64(ts[0] if one_ts else ts[i]) + ts_offset
        tasks[slot, T_CPU] = c
        faulted = True
        n_blocks = ctl[CTL_NBLOCKS]
        cur_blk = handle_mm_fault(st, vmas, v, asid, vpn, cur_blk, c, slot, task_pol, w != 0)
        if cur_blk < 0:
            status = EV_OOM
            break
        cur_numa = blk_numa[cur_blk] != 0
        if ctl[CTL_NBLOCKS] != n_blocks:
            pf_pmd = np.int64(-1)      # a new block: the look-ahead may have missed it
    if status == EV_DONE and i < stop:
        status = EV_TIME
    if slot >= 0:
        tasks[slot, T_CPU] = c
        tasks[slot, T_ACC_LOCAL] += acc_local
        tasks[slot, T_ACC_REMOTE] += acc_remote
    pos[0] = i
    return status
