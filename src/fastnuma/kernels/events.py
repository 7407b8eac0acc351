"""The hot loop: a stream of events (loads and stores, by threads on CPUs, at times) run
against the page tables. ``sim.access`` and trace replay both use it.

``run_events`` dispatches event by event: it checks the event (control op, thread, pid,
CPU), looks ahead for streams of faults, and takes what is not a plain hit the general
way: the node from the frame, the dirty bit set by the CPU, the tiering LRU stamp, or a
fault (fault_stream.py: a stream of hinting faults is taken there whole, any other fault
by fault.py, after which the access is retried, as the CPU does). An access
that needs nothing but counting (present, not PROT_NONE, the node cached in the PTE, the
access allowed as it is) starts ``present_run``, which runs such accesses until one is
not: threads come from a small direct-mapped cache (no branch to mispredict when
threads interleave), blocks from a look-ahead ring, and the events of one thread on one
CPU in one PMD run in an inner loop that checks only the PTE. When every column is per
event (trace replay), such accesses run in ``hits.hit_chunks`` instead, a chunk of events
at a time, and ``present_run`` takes the rest (``sim.access``, chunks of several
processes, tids beyond the direct table, more threads than its table). The loop returns
to Python for what Python owns: a control event, a thread seen for the first time, a
time at which NUMA-balancing ticks are due, a segfault, an OOM, or a table that needs
room.
"""
import numpy as np

from ..constants import OP_WRITE, PAGE_SHIFT
from ..dtypes import (CTL_HCOUNT, CTL_NBLOCKS, CTL_NFRAMES, EV_BAD_CPU, EV_BAD_PID, EV_CONTROL,
                      EV_DONE, EV_NEED_GROW, EV_NEW_THREAD, EV_OOM, EV_SEGV, EV_TIME,
                      OPT_MEMORY_TIERING, PTRS_PER_PMD_SHIFT, ROOM_BLOCKS, ROOM_FRAMES, T_ASID,
                      T_CPU, T_PID, T_POLICY)
from ._jit import kernel, prefetch
from .access import (PREFETCH_AHEAD, RING, access_node, cached_block, count_accesses,
                     fast_node, look_ahead, pte_index, ring_block, set_dirty)
from .borrowed import borrowed
from .cache import cache_is_cold
from .fault_stream import fault_path_types, fault_stream_apart
from .hits import (HIT_CHUNK, PMD_CACHE, TH_SLOT, TH_TID, flush_hits, hit_chunks,
                   hit_cpu_bases, new_hit_threads)
from .state import block_of
from .tiering import lru_touch
from .vma import access_error, find_vma_in

THREAD_CACHE = 64             # entries of the (tid, pid) -> slot cache
RUN_RETRY = 64                # present_run tries a run at least once in this many events
TID_HASH_MULT = 0x9E3779B97F4A7C15   # Fibonacci hashing of thread ids (engine.py's table)
TID_HASH_SHIFT = 40


@kernel(inline="always")
def tid_hash(tid, mask):
    """First probe of ``tid`` in the thread table (open addressing, keys -1 = empty)."""
    return np.int64((np.uint64(tid) * np.uint64(TID_HASH_MULT))
                    >> np.uint64(TID_HASH_SHIFT)) & mask


@kernel
def find_thread(tid_keys, tid_vals, tid):
    """The slot of thread ``tid`` in the thread table, or -1."""
    mask = tid_keys.size - 1
    s = tid_hash(tid, mask)
    while tid_keys[s] != tid and tid_keys[s] != -1:
        s = (s + 1) & mask
    return np.int64(tid_vals[s]) if tid_keys[s] == tid else np.int64(-1)


@kernel
def resolve_thread(cache, tid_keys, tid_vals, tasks, tid, pid):
    """The slot of thread ``tid`` of process ``pid`` from the thread table, entered in
    the cache; -1: no such thread (EV_NEW_THREAD), -2: of another process (EV_BAD_PID)."""
    s = find_thread(tid_keys, tid_vals, tid)
    if s < 0 or tasks[s, T_PID] != pid:
        return np.int64(-1) if s < 0 else np.int64(-2)
    e = tid & (THREAD_CACHE - 1)
    cache[e, 0], cache[e, 1], cache[e, 2] = tid, pid, s
    return s


@kernel
def new_thread_cache():
    """An empty (tid, pid, slot) cache: entry e holds tid e + 1, which maps elsewhere."""
    cache = np.full((THREAD_CACHE, 3), -1, np.int64)
    for e in range(THREAD_CACHE):     # a loop: a slice assignment compiles a shape check
        cache[e, 0] = e + 1           # with its error message (2 s of a cold start)
    return cache


@kernel(inline="always")
def first_at_or_after(ts, start, stop, t):
    """The first index in [start, stop) whose ts is >= t, else stop (ts never decreases;
    the trace reader checks it)."""
    if ts.size == 1:
        return start if start < stop and np.int64(ts[0]) >= t else stop
    lo, hi = start, stop
    while lo < hi:
        mid = (lo + hi) >> 1
        if np.int64(ts[mid]) < t:
            lo = mid + 1
        else:
            hi = mid
    return lo


@kernel(inline="always")
def cached_slot(cache, tid, pid):
    """The slot of thread ``tid`` of process ``pid`` in the direct-mapped cache (no branch
    to mispredict when threads interleave), or -1 when it is not there."""
    e = tid & (THREAD_CACHE - 1)
    return cache[e, 2] if cache[e, 0] == tid and cache[e, 1] == pid else np.int64(-1)


@kernel(inline="always")
def event_status(w, s, cpu_ok):
    """Whether the event loop can run an event (EV_DONE) or why not, in this order:
    a control event, a thread not in the table (slot -1) or of another process (-2), a
    CPU not in the topology."""
    return (EV_CONTROL if w > OP_WRITE else EV_NEW_THREAD if s == -1 else
            EV_BAD_PID if s == -2 else EV_DONE if cpu_ok else EV_BAD_CPU)


@kernel(inline="always")
def no_room(ctl, blk_cap, frame_cap, hash_cap):
    """True when the tables may not have room for one more fault (Python grows them)."""
    return (ctl[CTL_NBLOCKS] + ROOM_BLOCKS > blk_cap or ctl[CTL_NFRAMES] + ROOM_FRAMES > frame_cap
            or 2 * (ctl[CTL_HCOUNT] + ROOM_BLOCKS) > hash_cap)


@kernel
def present_run(ptes, pmd_hash, blk_numa, tasks, cpu_node, cache, ring, addr, op, cpu, tid,
                pid, i, limit, asid, counts):
    """Run events from i while each is an access, by a thread in the slot cache (in
    address space ``asid``) on a valid CPU, that needs nothing but counting (``fast_node``);
    returns the first event that is not (the dispatcher handles it).

    Arrays are all arguments (no allocation, no StructRef): nothing is reference-counted
    per event. Prefetches the PTE PREFETCH_AHEAD events ahead, keeping the block it
    looked up in ``ring`` for that event: ring[k] = (event, asid, block). The events that
    follow one by the same thread on the same CPU in the same PMD run in an inner loop
    that checks only the PTE, counting in a register while node and op repeat (an add to
    the same counter per event is a store-to-load chain: 3x slower, measured)."""
    one_op, one_cpu, one_tid, one_pid = op.size == 1, cpu.size == 1, tid.size == 1, pid.size == 1
    per_event = not (one_cpu and one_tid and one_pid)
    n_cpus = cpu_node.size
    cur_pmd, cur_blk, pf_pmd, pf_blk = np.int64(-1), np.int64(-1), np.int64(-1), np.int64(-1)
    runs = True
    while i < limit:
        j = i + PREFETCH_AHEAD      # access.look_ahead's first half, written out: as an
        if j < limit:               # inlined helper, uniform runs took 30% longer (measured)
            vpn_j = np.int64(addr[j]) >> PAGE_SHIFT
            pf_pmd, pf_blk = cached_block(pmd_hash, asid, vpn_j, pf_pmd, pf_blk)
            ring[j & (RING - 1), 0], ring[j & (RING - 1), 1], ring[j & (RING - 1), 2] = j, asid, pf_blk
            if pf_blk >= 0:
                prefetch(ptes, pte_index(pf_blk, vpn_j))
        w = np.int64(op[0] if one_op else op[i])
        tt, pp = np.int64(tid[0] if one_tid else tid[i]), np.int64(pid[0] if one_pid else pid[i])
        s, c = cached_slot(cache, tt, pp), np.int64(cpu[0] if one_cpu else cpu[i])
        if w > OP_WRITE or s < 0 or c < 0 or c >= n_cpus or tasks[s, T_ASID] != asid:
            break
        cn = np.int64(cpu_node[c])
        vpn = np.int64(addr[i]) >> PAGE_SHIFT
        if vpn >> PTRS_PER_PMD_SHIFT != cur_pmd:
            cur_pmd = vpn >> PTRS_PER_PMD_SHIFT
            cur_blk = ring_block(ring, i, asid)
            if cur_blk < 0:                   # not looked up, or a fault since may have made it
                cur_blk = block_of(pmd_hash, asid, cur_pmd)
        b = max(cur_blk, 0)                   # (no branch around an inlined helper's loads)
        run_node = fast_node(ptes, b, vpn, w)
        if cn < 0 or cur_blk < 0 or blk_numa[b] != 0 or run_node < 0:
            break
        run_w, run_n = w, np.int64(1)
        i += 1
        while i < limit and runs:             # the run
            vpn = np.int64(addr[i]) >> PAGE_SHIFT
            w = np.int64(op[0] if one_op else op[i])
            if vpn >> PTRS_PER_PMD_SHIFT != cur_pmd or w > OP_WRITE:
                break
            if per_event and (np.int64(tid[0] if one_tid else tid[i]) != tt
                              or np.int64(pid[0] if one_pid else pid[i]) != pp
                              or np.int64(cpu[0] if one_cpu else cpu[i]) != c):
                break
            node = fast_node(ptes, cur_blk, vpn, w)
            if node < 0:
                break
            if node != run_node or w != run_w:
                count_accesses(counts, tasks, s, cn, run_node, run_w, run_n)
                run_node, run_w, run_n = node, w, np.int64(0)
            run_n += 1
            i += 1
        count_accesses(counts, tasks, s, cn, run_node, run_w, run_n)
        tasks[s, T_CPU] = c
        # try runs while they pay: after a run, and once in RUN_RETRY events
        runs = run_n > 1 or i & (RUN_RETRY - 1) == 0
    return i


def compile_fault_path_ahead(st, events):
    """If run_events is about to compile (a cold cache): start compiling the fault path in
    a second process for the argument types run_events passes it (the typing of that call
    would start it too, 5-6 s into run_events' compilation; _background.start does
    nothing when the fault path is in the cache)."""
    if not run_events.overloads and cache_is_cold():
        fault_stream_apart.compile_ahead(fault_path_types(st, events))


@kernel
def run_events(st, vmas, vma_lo, vma_hi, tid_keys, tid_vals, addr, op, cpu, tid, pid, ts,
               start, stop, stop_ts, pos, counts, ts_offset, tid_base, tid_cpu, hit_cells):
    """Run events [start, stop); returns an EV_* status, the index reached in pos[0].

    Any per-event column may have one element, which then holds for all (``sim.access``).
    ``vmas`` holds every address space's VMA rows, asid a's at vmas[vma_lo[a]:vma_hi[a]].
    ``counts``: int64 [cpu node, memory node, read/write], accumulated; st.tasks gets each
    thread's CPU and local/remote counts. Events with ts >= stop_ts are not run; an event
    runs at simulated time ts + ts_offset. The dispatcher: an event that needs nothing
    but counting starts a ``present_run``, anything else is handled here. Calls and
    StructRef attributes stay in this body, out of inlined helpers, and no array variable
    is reassigned in the loop: either makes Numba count references per event (2-3x slower).
    When every column is per event (trace replay), plain hits run in ``hits.hit_chunks``
    (``tid_base``, ``tid_cpu``, ``hit_cells``: ``hits.hit_scratch``), else in ``present_run``.
    """
    vmas = borrowed(vmas)       # the fault path passes it on: no reference counting there
    ptes, frames, pmd_hash, blk_numa = st.ptes, st.frames, st.pmd_hash, st.blk_numa
    tasks, cpu_node, ctl, clock = st.tasks, st.cpu_node, st.ctl, st.clock
    blk_cap, frame_cap, hash_cap = st.blk_key.size, frames.size, pmd_hash.shape[0]
    one_op, one_cpu, one_tid, one_pid, one_ts = (op.size == 1, cpu.size == 1, tid.size == 1,
                                                 pid.size == 1, ts.size == 1)
    cache = new_thread_cache()
    ring = np.full((RING, 3), -1, np.int64)         # look-ahead: (event, asid, block)
    tier = st.opts[OPT_MEMORY_TIERING] != 0         # every access stamps its frame then
    status, hint, faulted = EV_DONE, np.int64(0), False
    pf_pmd, pf_asid, pf_blk = np.int64(-1), np.int64(-1), np.int64(-1)
    n_cpus, n_nodes = cpu_node.size, counts.shape[1]
    # hits.hit_chunks: this call's thread table (n_rows used, all of process hit_pid)
    per_event = not (one_op or one_cpu or one_tid or one_pid)
    thr = new_hit_threads(n_nodes, per_event)
    cpu_base, pte_at = hit_cpu_bases(cpu_node, n_nodes), np.empty(HIT_CHUNK, np.uint64)
    pmd_cache = np.empty((2, PMD_CACHE), np.int64)
    n_rows, hit_pid = np.int64(0), np.int64(-1)
    limit = first_at_or_after(ts, start, stop, stop_ts)   # one search, not a check per event
    i = start
    w = tt = pp = s = c = asid = vpn = b = np.int64(-1)
    while i < limit:
        if not faulted:       # a new event (the retried access after a fault has it all)
            w = np.int64(op[0] if one_op else op[i])
            tt = np.int64(tid[0] if one_tid else tid[i])
            pp = np.int64(pid[0] if one_pid else pid[i])
            s = cached_slot(cache, tt, pp)
            if s < 0 and w <= OP_WRITE:                   # a thread not seen in this call
                s = resolve_thread(cache, tid_keys, tid_vals, tasks, tt, pp)
            c = np.int64(cpu[0] if one_cpu else cpu[i])
            status = event_status(w, s, c >= 0 and c < n_cpus and cpu_node[c] >= 0)
            if status != EV_DONE:
                break
            tasks[s, T_CPU] = c
            asid = tasks[s, T_ASID]
            pf_pmd, pf_blk = look_ahead(ptes, frames, pmd_hash, ring, addr, i, limit, asid,
                                        pf_pmd if asid == pf_asid else np.int64(-1), pf_blk)
            pf_asid = asid
            vpn = np.int64(addr[i]) >> PAGE_SHIFT
            b = ring_block(ring, i, asid)
            if b < 0:                                   # not looked up, or a fault since
                b = block_of(pmd_hash, asid, vpn >> PTRS_PER_PMD_SHIFT)   # may have made it
        if b >= 0 and blk_numa[b] == 0:
            pi = pte_index(b, vpn)
            fl, f = ptes[pi]["flags"], np.int64(ptes[pi]["frame"])
            fast = not tier and not faulted and fast_node(ptes, b, vpn, w) >= 0
            node = access_node(frames, fl, f, w)
            if node >= 0:
                set_dirty(ptes, frames, pi, fl, f, w)
                if tier:
                    lru_touch(st, f)
                count_accesses(counts, tasks, s, np.int64(cpu_node[c]), node, w, 1)
                i, faulted = i + 1, False
                j = i
                if fast and thr.shape[1] > 1 and 0 <= tt < tid_base.size:
                    if pp != hit_pid:       # the table holds one process's threads
                        flush_hits(tid_base, hit_cells, thr, n_rows, counts, tasks)
                        n_rows, hit_pid = np.int64(0), pp
                    if tid_base[tt] == 0 and n_rows + 1 < thr.shape[1]:
                        n_rows += 1
                        tid_base[tt] = (n_rows - 1) * 2 * n_nodes * n_nodes + 1
                        thr[TH_TID, n_rows], thr[TH_SLOT, n_rows] = tt, s
                    j = hit_chunks(ptes, pmd_hash, blk_numa, tasks, tid_base, tid_cpu, hit_cells,
                                   thr, cpu_base, pte_at, pmd_cache, addr, op, cpu, tid, pid,
                                   i, limit, asid, pp, n_rows, n_nodes)
                if fast and j == i:  # not right after a fault: faults come in streams
                    j = present_run(ptes, pmd_hash, blk_numa, tasks, cpu_node, cache, ring,
                                    addr, op, cpu, tid, pid, i, limit, asid, counts)
                i = j
                continue
        v = find_vma_in(vmas, np.int64(vma_lo[asid]), np.int64(vma_hi[asid]), vpn, hint)
        status = (EV_SEGV if v < 0 or access_error(vmas, v, w) else
                  EV_NEED_GROW if no_room(ctl, blk_cap, frame_cap, hash_cap) else EV_DONE)
        if status != EV_DONE:
            break
        hint, n_blocks = v, ctl[CTL_NBLOCKS]
        clock[0] = np.int64(ts[0] if one_ts else ts[i]) + ts_offset
        b, j = fault_stream_apart(st, vmas, v, asid, vpn, b, c, s, tasks[s, T_POLICY], w != 0,
                                  addr, op, cpu, tid, pid, ts, i, limit, ts_offset, counts,
                                  ring, tt, pp)
        if b < 0:
            status = EV_OOM
            break
        # a stream of hinting faults ran to j; else the access is retried, as the CPU
        # does; after a new block the look-ahead looks again
        faulted, i = j == i, j
        pf_pmd = np.int64(-1) if ctl[CTL_NBLOCKS] != n_blocks else pf_pmd
    flush_hits(tid_base, hit_cells, thr, n_rows, counts, tasks)
    if status == EV_DONE and i < stop:
        status = EV_TIME
    pos[0] = i
    return status
