"""NUMA hinting: change_prot_numa (marking) and do_numa_page (the hinting fault).

The rules are docs/lazy-migration.md §3 and §5 (docs/linux-semantics.md §2.5, §4, §7):
``change_prot_numa_range`` marks present entries PROT_NONE/NUMA (``PTE_NUMA``) block by
block; a later access to a marked entry calls ``do_numa_page`` (or, with the seed's PMD
batching, ``do_pmd_numa_page`` for the whole PMD), which counts the hinting fault, asks
``mpol_misplaced`` for a target and migrates the folio there (``migrate_misplaced``), then
feeds the task's NUMA-balancing statistics (``task_numa_fault``, ``task_numa_placement``).
"""
import numpy as np
from numba import prange

from ..constants import (GOLDEN_RATIO_32, LAST_CPUPID_UNSET, MPOL_BIND, MPOL_F_MOF,
                         MPOL_F_MORON, MPOL_INTERLEAVE, MPOL_LOCAL, MPOL_PREFERRED,
                         MPOL_PREFERRED_MANY, MPOL_WEIGHTED_INTERLEAVE, NSEC_PER_MSEC,
                         PID_BITS_SHIFT, RATELIMIT_PAGES, RATELIMIT_WINDOW_NS)
from ..dtypes import (OPT_MEMORY_TIERING, C_NUMA_HINT_FAULTS, C_NUMA_HINT_FAULTS_LOCAL, C_NUMA_PAGES_MIGRATED,
                      C_PGMIGRATE_FAIL, C_PGMIGRATE_SUCCESS, C_THP_MIGRATION_FAIL,
                      C_THP_MIGRATION_SUCCESS, F_BUF_SHARED, F_MEM_SHARED, M_NEXT_SCAN,
                      M_SCAN_MAX, M_SCAN_MIN, M_SCAN_SEQ, NO_POLICY, N_NEAREST_CPU_NODE,
                      N_RATE_END, N_RATE_PAGES, OPT_LAST_NODE_FILTER,
                      OPT_MIGRATE_RATE_LIMIT, OPT_NUMA_BALANCING, OPT_SHARED_PAGE_RULE,
                      PTE_HUGE, PTE_NUMA, PTE_PRESENT, PTE_ZERO, PTRS_PER_PMD,
                      PTRS_PER_PMD_SHIFT, TNF_MIGRATED, TNF_MIGRATE_FAIL, T_ASID,
                      T_LOC_FAILED, T_LOC_LOCAL, T_LOC_REMOTE, T_MIGRATE_RETRY,
                      T_PAGES_MIGRATED, T_PREFERRED, T_SCAN_PERIOD, T_SCAN_PERIOD_MAX,
                      T_SCAN_SEQ, T_TID, VM_ACCESS_FLAGS)
from ._jit import kernel
from .alloc import alloc_thisnode, interleave_nid, nth_node, weighted_interleave_nid
from .migrate import commit_folio_move
from .state import block_vpn, entry_range
from .tiering import (count_promotion, folio_use_access_time, promotion_gate_failed,
                      refuse_first_fault, should_promote, skip_arming, skip_task_stats,
                      stamp_if_slow, valid_cpu)
from .vma import find_vma, folio_ilx, vma_policy



# ------------------------------------------------------------------ change_prot_numa
@kernel(inline="always")
def mark_block(st, ptes, frames, blk_numa, b, first, lo, hi, cow_check, local_skip_node,
               shared_page_rule, thp_update_count, tier):
    """change_pmd_range for one PMD: (updates, huge updates) of entries [lo, hi) of block
    b (first = its first vpn). A THP here is wholly covered (the caller split the edges).
    The folio is read only when a rule needs it: ``cow_check`` (a private VMA of a process
    that took part in a fork: skip folios mapped more than once), ``local_skip_node``
    (skip folios on this node; -1: no such rule), ``shared_page_rule`` (seed: mapcount 1
    only), ``tier`` (memory tiering: mode 2 skips top-tier folios, slow-tier ones get
    the access time; kernels/tiering.py)."""
    base, i0, i1 = entry_range(b, first, lo, hi)
    fl = ptes[base]["flags"]
    if fl & PTE_HUGE:                                   # change_huge_pmd
        if not fl & PTE_PRESENT or fl & (PTE_ZERO | PTE_NUMA):
            return 0, 0
        if shared_page_rule and frames[ptes[base]["frame"]]["mapcount"] != 1:
            return 0, 0
        if tier:
            f = np.int64(ptes[base]["frame"])
            if skip_arming(st, np.int64(frames[f]["node"])):
                return 0, 0
            stamp_if_slow(st, f)
        for i in range(PTRS_PER_PMD):
            ptes[base + i]["flags"] |= PTE_NUMA
        return thp_update_count, (1 if thp_update_count == PTRS_PER_PMD else 0)
    need_folio = cow_check or shared_page_rule or local_skip_node >= 0 or tier
    upd = 0
    for i in range(i0, i1):                             # change_pte_range
        fl = ptes[base + i]["flags"]
        if fl & (PTE_PRESENT | PTE_NUMA | PTE_ZERO) != PTE_PRESENT:
            continue
        if need_folio:
            fr = frames[ptes[base + i]["frame"]]
            mc = fr["mapcount"]
            if (shared_page_rule and mc != 1) or (cow_check and mc > 1) \
                    or fr["node"] == local_skip_node:
                continue
            if tier:
                f = np.int64(ptes[base + i]["frame"])
                if skip_arming(st, np.int64(fr["node"])):
                    continue
                stamp_if_slow(st, f)
        ptes[base + i]["flags"] = fl | PTE_NUMA
        upd += 1
    return upd, 0


@kernel(inline="always")
def mark_blocks(st, blocks, k0, k1, lo, hi, cow_check, local_skip_node, pmd_batching,
                shared_page_rule, thp_update_count):
    ptes, frames, blk_numa, blk_key = st.ptes, st.frames, st.blk_numa, st.blk_key
    upd = 0
    huge = 0
    tier = st.opts[OPT_MEMORY_TIERING] != 0
    for k in range(k0, k1):
        b = blocks[k]
        first = block_vpn(blk_key, b)
        u, h = mark_block(st, ptes, frames, blk_numa, b, first, lo, hi, cow_check,
                          local_skip_node, shared_page_rule, thp_update_count, tier)
        if u and pmd_batching and not ptes[b << PTRS_PER_PMD_SHIFT]["flags"] & PTE_HUGE:
            blk_numa[b] = 1                 # seed: the PMD itself is marked too
        upd += u
        huge += h
    return upd, huge


@kernel
def change_prot_numa_range(st, blocks, lo, hi, cow_check, local_skip_node, pmd_batching,
                           shared_page_rule, thp_update_count):
    """Mark [lo, hi) of one VMA (``blocks``: its blocks there); see mark_block for the
    rules' arguments. Returns (updates, huge updates)."""
    return mark_blocks(st, blocks, 0, blocks.size, lo, hi, cow_check, local_skip_node,
                       pmd_batching, shared_page_rule, thp_update_count)


@kernel(parallel=True)
def change_prot_numa_range_parallel(st, blocks, lo, hi, cow_check, local_skip_node,
                                    pmd_batching, shared_page_rule, thp_update_count,
                                    n_chunks):
    """change_prot_numa_range with the blocks split in ``n_chunks`` parts run in parallel
    (blocks are distinct PMDs, so the parts never touch the same entry)."""
    upd = 0
    huge = 0
    step = (blocks.size + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        u, h = mark_blocks(st, blocks, c * step, min((c + 1) * step, blocks.size), lo, hi,
                           cow_check, local_skip_node, pmd_batching, shared_page_rule,
                           thp_update_count)
        upd += u
        huge += h
    return upd, huge


# ------------------------------------------------------------------ the hinting fault
@kernel(inline="always")
def node_in(mask, n):
    return n >= 0 and (np.uint64(mask) >> np.uint64(n)) & np.uint64(1) != 0


@kernel(inline="always")
def should_numa_migrate_memory(st, f, cpu, slot, this):
    """The two-stage filter of a MORON policy (kernel/sched/fair.c), with no NUMA groups."""
    if st.fallback[this, 0] != this:                     # the CPU's node has no memory
        return False
    if folio_use_access_time(st, f):                    # docs/tiering.md P4-P6
        return should_promote(st, f, this)
    tid = st.tasks[slot, T_TID]
    old = np.int64(st.frames[f]["last_cpupid"])
    st.frames[f]["last_cpupid"] = ((cpu & 0x1FFF) << 8) | (tid & 0xFF)
    if refuse_first_fault(st, f, old):                  # docs/tiering.md P3
        return False
    pid_unset = (old & 0xFF) == 0xFF
    same_pid = (old & 0xFF) == (tid & 0xFF)
    if (st.tasks[slot, T_PREFERRED] == -1 or st.tasks[slot, T_SCAN_SEQ] <= 4) and \
            (pid_unset or same_pid):
        return True                                     # early in the task's life
    if not pid_unset and (not valid_cpu(st, old >> 8) or st.cpu_node[old >> 8] != this):
        return False            # two faults from different nodes (no such CPU: no node)
    return True                                         # private, or a group-less task


@kernel(inline="always")
def mpol_misplaced(st, vmas, v, f, vpn, cpu, slot, task_pol):
    """The node the folio should move to under its policy, or -1 (§5.2)."""
    pol = vma_policy(vmas, v, task_pol)
    if pol == NO_POLICY:                                # the system default policy
        mode, pflags, nodes = MPOL_LOCAL, MPOL_F_MOF | MPOL_F_MORON, np.uint64(0)
    else:
        row = st.policies[pol]
        mode, pflags, nodes = row["mode"], row["flags"], row["nodes"]
    if not pflags & MPOL_F_MOF:
        return np.int64(-1)
    cur = np.int64(st.frames[f]["node"])
    this = np.int64(st.cpu_node[cpu])
    order = np.int64(st.frames[f]["order"])
    polnid = np.int64(-1)
    if mode == MPOL_INTERLEAVE:
        polnid = interleave_nid(nodes, folio_ilx(st, vmas, v, vpn, order))
    elif mode == MPOL_WEIGHTED_INTERLEAVE:
        polnid = weighted_interleave_nid(st, nodes, folio_ilx(st, vmas, v, vpn, order))
    elif mode == MPOL_PREFERRED:
        if node_in(nodes, cur):
            return np.int64(-1)
        polnid = nth_node(nodes, np.int64(0))
    elif mode == MPOL_LOCAL:
        polnid = this
    elif mode == MPOL_BIND or mode == MPOL_PREFERRED_MANY:
        if pflags & MPOL_F_MORON:
            if not node_in(nodes, this):
                return np.int64(-1)
        else:
            if node_in(nodes, cur):
                return np.int64(-1)
            lst = st.fallback[this]
            for j in range(lst.size):
                if lst[j] < 0:
                    break
                if node_in(nodes, np.int64(lst[j])):
                    polnid = np.int64(lst[j])
                    break
    if pflags & MPOL_F_MORON:
        polnid = this
        if st.opts[OPT_LAST_NODE_FILTER] != 0:          # seed: the page's last node
            last = st.frames[f]["last_cpupid"]
            st.frames[f]["last_cpupid"] = this
            if last != this:
                return np.int64(-1)
        elif cur == this or not should_numa_migrate_memory(st, f, cpu, slot, this):
            return np.int64(-1)
    return polnid if polnid != cur else np.int64(-1)


@kernel(inline="always")
def migrate_misplaced(st, pi, f, target, cpu):
    """migrate_misplaced_folio_prepare + migrate_misplaced_folio of the folio f mapped at pi:
    TNF_* flags (0: the seed's mapcount rule declined without trying)."""
    order = np.int64(st.frames[f]["order"])
    nr = np.int64(1) << order
    if st.opts[OPT_SHARED_PAGE_RULE] != 0 and st.frames[f]["mapcount"] != 1:
        return 0
    if st.opts[OPT_MIGRATE_RATE_LIMIT] != 0:            # numamigrate_update_ratelimit
        now = st.clock[0]
        if now > st.numa_nodes[target, N_RATE_END]:
            st.numa_nodes[target, N_RATE_PAGES] = 0
            st.numa_nodes[target, N_RATE_END] = now + RATELIMIT_WINDOW_NS
        if st.numa_nodes[target, N_RATE_PAGES] > RATELIMIT_PAGES:
            return TNF_MIGRATE_FAIL
        st.numa_nodes[target, N_RATE_PAGES] += nr
    if st.free[target] <= st.wmark_high[target] + nr:   # migrate_balanced_pgdat
        promotion_gate_failed(st, target)               # docs/tiering.md P7
        return TNF_MIGRATE_FAIL
    if alloc_thisnode(st, target, order, np.int64(st.cpu_node[cpu])) < 0:
        st.vm[C_PGMIGRATE_FAIL] += nr
        if order > 0:
            st.vm[C_THP_MIGRATION_FAIL] += 1
        return TNF_MIGRATE_FAIL
    src = np.int64(st.frames[f]["node"])
    commit_folio_move(st, f, pi, target)
    count_promotion(st, f, src, target, nr)             # docs/tiering.md P8, S7
    st.vm[C_PGMIGRATE_SUCCESS] += nr
    st.vm[C_NUMA_PAGES_MIGRATED] += nr
    if order > 0:
        st.vm[C_THP_MIGRATION_SUCCESS] += 1
    return TNF_MIGRATED


@kernel
def update_task_scan_period(st, slot, shared, private):
    """update_task_scan_period (kernel/sched/fair.c), NUMA_PERIOD_SLOTS 10, threshold 7."""
    t = st.tasks[slot]
    mm = st.mms[t[T_ASID]]
    remote, local, failed = t[T_LOC_REMOTE], t[T_LOC_LOCAL], t[T_LOC_FAILED]
    if local + shared == 0 or failed > 0:
        t[T_SCAN_PERIOD] = min(t[T_SCAN_PERIOD_MAX], t[T_SCAN_PERIOD] << 1)
        mm[M_NEXT_SCAN] = st.clock[0] + t[T_SCAN_PERIOD] * NSEC_PER_MSEC
        return
    slot_ms = (t[T_SCAN_PERIOD] + 9) // 10
    lr = (local * 10) // (local + remote) if local + remote else 0
    ps = (private * 10) // (private + shared) if private + shared else 0
    if ps >= 7:
        diff = max(1, ps - 7) * slot_ms
    elif lr >= 7:
        diff = max(1, lr - 7) * slot_ms
    else:
        diff = -(7 - max(lr, ps)) * slot_ms
    t[T_SCAN_PERIOD] = min(max(t[T_SCAN_PERIOD] + diff, mm[M_SCAN_MIN]), mm[M_SCAN_MAX])
    t[T_LOC_REMOTE] = 0
    t[T_LOC_LOCAL] = 0
    t[T_LOC_FAILED] = 0


@kernel
def task_numa_placement(st, slot):
    """task_numa_placement without NUMA groups: decay the memory faults, take in the
    buffer, pick the preferred node, adapt the scan period."""
    t = st.tasks[slot]
    mm = st.mms[t[T_ASID]]
    if t[T_SCAN_SEQ] == mm[M_SCAN_SEQ]:
        return
    t[T_SCAN_SEQ] = mm[M_SCAN_SEQ]
    t[T_SCAN_PERIOD_MAX] = mm[M_SCAN_MAX]
    faults = st.task_faults[slot]
    shared = np.int64(0)        # int64, not literal 0: one compiled update_task_scan_period
    private = np.int64(0)
    max_faults = 0
    max_nid = -1
    for n in range(faults.shape[0]):
        total = 0
        for p in range(2):
            buf = faults[n, F_BUF_SHARED + p]
            faults[n, F_MEM_SHARED + p] += buf - faults[n, F_MEM_SHARED + p] // 2
            faults[n, F_BUF_SHARED + p] = 0
            if p == 0:
                shared += buf
            else:
                private += buf
            total += faults[n, F_MEM_SHARED + p]
        if total > max_faults:
            max_faults = total
            max_nid = n
    if max_faults:
        t[T_PREFERRED] = st.numa_nodes[max_nid, N_NEAREST_CPU_NODE]
    update_task_scan_period(st, slot, shared, private)


@kernel
def task_numa_fault(st, slot, old_cpupid, mem_node, nr, flags, cpu):
    """task_numa_fault (called only with kernel.numa_balancing on): the task's fault
    buffers, locality, and a placement when its retry time passed."""
    t = st.tasks[slot]
    if old_cpupid == LAST_CPUPID_UNSET or st.opts[OPT_LAST_NODE_FILTER] != 0:
        priv = 1
    else:
        priv = 1 if (old_cpupid & 0xFF) == (t[T_TID] & 0xFF) else 0
    now = st.clock[0]
    if now > t[T_MIGRATE_RETRY]:
        task_numa_placement(st, slot)
        if t[T_PREFERRED] != -1:                        # numa_migrate_preferred
            t[T_MIGRATE_RETRY] = now + min(1000, t[T_SCAN_PERIOD] // 16) * NSEC_PER_MSEC
    if flags & TNF_MIGRATED:
        t[T_PAGES_MIGRATED] += nr
    if flags & TNF_MIGRATE_FAIL:
        t[T_LOC_FAILED] += nr
    st.task_faults[slot, mem_node, F_BUF_SHARED + priv] += nr
    if st.cpu_node[cpu] == mem_node:
        t[T_LOC_LOCAL] += nr
    else:
        t[T_LOC_REMOTE] += nr


@kernel(inline="always")
def pid_bit(tid):
    """hash_32(tid, ilog2(BITS_PER_LONG)): the thread's bit in a VMA's pids_active
    (vma_set_access_pid_bit); numa_balancing.py reads the same bits. The product is cut
    to 32 bits, as in C: Numba widens uint32 * uint32 to 64 bits, and the untruncated
    value shifted a uint64 by 64 or more (undefined; x86 happened to mask it)."""
    h = (np.uint64(np.uint32(tid)) * np.uint64(GOLDEN_RATIO_32)) & np.uint64(0xFFFFFFFF)
    return np.int64(h >> np.uint64(PID_BITS_SHIFT))


@kernel(inline="always")
def numa_fault_folio(st, vmas, v, pi, f, vpn, cpu, slot, task_pol):
    """numa_migrate_check + the migration + task_numa_fault for the folio f mapped at pi."""
    node = np.int64(st.frames[f]["node"])
    st.vm[C_NUMA_HINT_FAULTS] += 1
    if node == st.cpu_node[cpu]:
        st.vm[C_NUMA_HINT_FAULTS_LOCAL] += 1
    vmas[v]["pids"] |= np.uint64(1) << np.uint64(pid_bit(st.tasks[slot, T_TID]))
    # docs/tiering.md P1: a slow-tier folio's field holds a time, not a cpupid
    old = np.int64(-1) if folio_use_access_time(st, f) else \
        np.int64(st.frames[f]["last_cpupid"])
    target = mpol_misplaced(st, vmas, v, f, vpn, cpu, slot, task_pol)
    flags = 0
    if target >= 0:
        flags = migrate_misplaced(st, pi, f, target, cpu)
        if flags == TNF_MIGRATED:
            node = target
    if st.opts[OPT_NUMA_BALANCING] == 0 or skip_task_stats(st, node, old):  # tiering.md P9
        return
    task_numa_fault(st, slot, old, node, np.int64(1) << st.frames[f]["order"], flags, cpu)


@kernel(inline="always")
def do_numa_page(st, vmas, v, pi, vpn, cpu, slot, task_pol):
    """do_numa_page / do_huge_pmd_numa_page: the entry at pi (a THP: its whole PMD) is
    made accessible again, then the fault is decided."""
    if st.ptes[pi]["flags"] & PTE_HUGE:
        base = (pi >> PTRS_PER_PMD_SHIFT) << PTRS_PER_PMD_SHIFT
        for i in range(PTRS_PER_PMD):
            st.ptes[base + i]["flags"] &= ~np.uint32(PTE_NUMA)
    else:
        st.ptes[pi]["flags"] &= ~np.uint32(PTE_NUMA)
    numa_fault_folio(st, vmas, v, pi, np.int64(st.ptes[pi]["frame"]), vpn, cpu, slot,
                     task_pol)


@kernel
def do_pmd_numa_page(st, vmas, v, b, vpn, cpu, slot, task_pol):
    """Seed PMD batching: every marked entry of block b from max(PMD start, VMA start) on
    is handled as if this CPU touched it (entries mapped more than once are only
    unmarked)."""
    st.blk_numa[b] = 0
    first = (vpn >> PTRS_PER_PMD_SHIFT) << PTRS_PER_PMD_SHIFT
    base = b << PTRS_PER_PMD_SHIFT
    hint = v
    for i in range(max(first, vmas[v]["start"]) - first, PTRS_PER_PMD):
        fl = st.ptes[base + i]["flags"]
        if fl & (PTE_PRESENT | PTE_NUMA) != PTE_PRESENT | PTE_NUMA:
            continue
        w = find_vma(vmas, first + i, hint)
        if w >= 0 and not vmas[w]["flags"] & VM_ACCESS_FLAGS:
            continue                    # PROT_NONE, not a mark (the seed's pte_numa bit)
        st.ptes[base + i]["flags"] = fl & ~np.uint32(PTE_NUMA)
        f = np.int64(st.ptes[base + i]["frame"])
        if st.frames[f]["mapcount"] != 1 or w < 0:
            continue
        hint = w
        numa_fault_folio(st, vmas, w, base + i, f, first + i, cpu, slot, task_pol)
