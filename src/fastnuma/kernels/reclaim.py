"""Reclaim for memory tiering (docs/tiering.md §7): kswapd's balance_pgdat, shrink_node
over an approximated LRU, demotion to the next tier, and the page-cache drop.

Linux functions: mm/vmscan.c balance_pgdat, shrink_node, isolate_lru_folios (batches of
SWAP_CLUSTER_MAX pages), shrink_folio_list, demote_folio_list, alloc_demote_folio;
mm/memory-tiers.c next_demotion_node. The LRU is approximated as in the reference model:
every frame keeps the access sequence number of its last access and of its last
examination (``frame_lru``, outside FRAME_DTYPE); reclaim takes the least recently
accessed frames first (ties: lower frame index first), and a frame accessed since it was
last examined gets one second chance (folio_check_references' young bit). A victim that
cannot be demoted is dropped when it is page cache and activated otherwise (no swap).
"""
import numpy as np

from ..constants import SWAP_CLUSTER_MAX
from ..dtypes import (C_PAGEOUTRUN, C_PGMIGRATE_SUCCESS, C_PGSCAN_ANON, C_PGSCAN_FILE,
                      C_PGSCAN_KSWAPD, C_PGSTEAL_ANON, C_PGSTEAL_FILE, C_PGSTEAL_KSWAPD,
                      CTL_ACCESS_SEQ, CTL_NBLOCKS, CTL_NFRAMES, CTL_TIER_RNG, FRAME_DIRTY,
                      FRAME_FILE, FRAME_FREE, FRAME_ISOLATED, FRAME_PTE_DIRTY,
                      N_DEMOTE_LOWER, N_DEMOTE_PREFERRED, N_KSWAPD_FAILURES, N_KSWAPD_WAKE,
                      N_PGDEMOTE_KSWAPD, OPT_DEMOTION_ENABLED, PTE_NODE_MASK, PTE_NODE_SHIFT,
                      PTE_PRESENT, PTE_ZERO, PTRS_PER_PMD)
from ._jit import kernel
from .zone import WMARK_LOW, WMARK_MIN, node_ok, zone_statistics
from .state import release_frame, set_pte_node
from .tiering import pgdat_balanced, reset_stamp_on_tier_change, wakeup_kswapd

WHO_KSWAPD, WHO_DIRECT = 0, 1     # pgscan_/pgsteal_/pgdemote_ offset of the reclaimer
U64 = np.uint64


@kernel(inline="always")
def splitmix64(st):
    """next_demotion_node's random draw, reproducible: splitmix64, one step per draw,
    its state in ctl (the reference model draws the same numbers)."""
    z = U64(st.ctl[CTL_TIER_RNG]) + U64(0x9E3779B97F4A7C15)
    st.ctl[CTL_TIER_RNG] = np.int64(z)
    z = (z ^ (z >> U64(30))) * U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> U64(27))) * U64(0x94D049BB133111EB)
    return z ^ (z >> U64(31))


@kernel(inline="always")
def in_mask(mask, n):
    return (U64(mask) >> U64(n)) & U64(1) != U64(0)


@kernel
def lru_candidates(st, node):
    """The allocated frames on ``node``, least recently accessed first; not those
    isolated for a migration in progress (off the LRU)."""
    nf = st.ctl[CTL_NFRAMES]
    out = np.empty(nf, np.int64)
    k = 0
    for f in range(nf):
        if not st.frames[f]["flags"] & (FRAME_FREE | FRAME_ISOLATED) and \
                st.frames[f]["node"] == node:
            out[k] = f
            k += 1
    out = out[:k]
    keys = np.empty(k, np.int64)
    for j in range(k):
        keys[j] = st.frame_lru[out[j]]["lru"]
    return out[np.argsort(keys, kind="mergesort")]


@kernel
def alloc_demote_folio(st, target, fallback_mask, order, src):
    """A3: ``target`` only (low, then wake its kswapd and min), then the fallback list
    (target's zonelist restricted to the source tier's lower_tier_mask) the same way.
    numastat as any allocation: preferred = the list's first node, the CPU taken to be
    on the source node. Returns the node, or -1."""
    for attempt in range(2):
        lst = st.fallback[target]
        first = np.int64(-1)
        got = np.int64(-1)
        for wmark in (WMARK_LOW, WMARK_MIN):
            for j in range(lst.size):
                n = np.int64(lst[j])
                if n < 0:
                    break
                if attempt == 0 and n != target:
                    continue
                if attempt == 1 and not in_mask(fallback_mask, n):
                    continue
                if first < 0:
                    first = n
                if node_ok(st, n, order, wmark):
                    got = n
                    break
            if got >= 0 or first < 0 or wmark == WMARK_MIN:
                break
            for j in range(lst.size):            # the slow path wakes the list's kswapds
                n = np.int64(lst[j])
                if n < 0:
                    break
                if (attempt == 0 and n == target) or (attempt == 1 and in_mask(fallback_mask, n)):
                    wakeup_kswapd(st, n)
        if got >= 0:
            st.free[got] -= np.int64(1) << order
            zone_statistics(st, got, first, src)
            return got
    return np.int64(-1)


@kernel(inline="always")
def count_steal(st, who, f, nr):
    st.vm[C_PGSTEAL_KSWAPD + who] += nr
    st.vm[C_PGSTEAL_FILE if st.frames[f]["flags"] & FRAME_FILE else C_PGSTEAL_ANON] += nr


@kernel
def reclaim_victims(st, node, who, victims, nv):
    """D4/D5: demote to one random preferred target (then the lower tier mask), stopping
    at the first failed allocation; the rest is dropped (page cache) or activated (anon).
    Returns the pages reclaimed."""
    done = np.int64(0)
    k = 0
    pref = st.numa_nodes[node, N_DEMOTE_PREFERRED]
    if nv and st.opts[OPT_DEMOTION_ENABLED] != 0 and pref != 0:
        cnt = 0
        for n in range(64):
            cnt += in_mask(pref, n)
        pick = np.int64(splitmix64(st) % U64(cnt))
        target = np.int64(-1)
        for n in range(64):
            if in_mask(pref, n):
                if pick == 0:
                    target = n
                    break
                pick -= 1
        lower = st.numa_nodes[node, N_DEMOTE_LOWER]
        while k < nv:
            f = victims[k]
            order = np.int64(st.frames[f]["order"])
            nr = np.int64(1) << order
            dst = alloc_demote_folio(st, target, lower, order, node)
            if dst < 0:
                break
            k += 1
            st.free[node] += nr                         # migrate_pages to dst
            st.frames[f]["node"] = dst
            if st.frames[f]["flags"] & FRAME_PTE_DIRTY:
                st.frames[f]["flags"] |= FRAME_DIRTY
            reset_stamp_on_tier_change(st, f, node, dst)
            st.vm[C_PGMIGRATE_SUCCESS] += nr
            st.numa_nodes[node, N_PGDEMOTE_KSWAPD + who] += nr
            count_steal(st, who, f, nr)
            done += nr
    while k < nv:
        f = victims[k]
        k += 1
        nr = np.int64(1) << np.int64(st.frames[f]["order"])
        if st.frames[f]["flags"] & FRAME_FILE:          # clean page cache: dropped
            count_steal(st, who, f, nr)
            release_frame(st, f)
            done += nr
        else:                                           # anon, no swap: activate_locked
            seq = st.ctl[CTL_ACCESS_SEQ] + 1
            st.ctl[CTL_ACCESS_SEQ] = seq
            st.frame_lru[f]["lru"] = seq
    return done


@kernel
def shrink_node(st, node, who, want):
    """D3-D6, one pass: the LRU-order candidates in batches of <= 32 pages (a THP alone
    is 512), second chance for frames accessed since last examined, the victims demoted,
    dropped or activated. Returns the pages reclaimed."""
    cands = lru_candidates(st, node)
    victims = np.empty(SWAP_CLUSTER_MAX, np.int64)
    reclaimed = np.int64(0)
    i = 0
    while i < cands.size and reclaimed < want:
        nv = 0
        pages = 0
        while i < cands.size and pages < SWAP_CLUSTER_MAX:
            f = cands[i]
            i += 1
            nr = np.int64(1) << np.int64(st.frames[f]["order"])
            pages += nr
            st.vm[C_PGSCAN_KSWAPD + who] += nr
            st.vm[C_PGSCAN_FILE if st.frames[f]["flags"] & FRAME_FILE else C_PGSCAN_ANON] += nr
            if st.frame_lru[f]["lru"] > st.frame_lru[f]["seen"]:
                st.frame_lru[f]["seen"] = st.ctl[CTL_ACCESS_SEQ]   # referenced: kept
                continue
            victims[nv] = f
            nv += 1
        reclaimed += reclaim_victims(st, node, who, victims, nv)
        if who == WHO_KSWAPD and pgdat_balanced(st, node):
            break
    return reclaimed


@kernel
def fix_pte_nodes(st):
    """PTEs caching a node (dtypes.PTE_NODE_SHIFT) of a frame that reclaim moved or freed
    get the frame's node again (the exclusive mapping's cache, set_pte_node)."""
    for b in range(st.ctl[CTL_NBLOCKS]):
        base = b * PTRS_PER_PMD
        for i in range(PTRS_PER_PMD):
            fl = st.ptes[base + i]["flags"]
            if fl & (PTE_PRESENT | PTE_ZERO) != PTE_PRESENT or not fl & PTE_NODE_MASK:
                continue
            f = st.ptes[base + i]["frame"]
            node = np.int64(st.frames[f]["node"])
            if (np.int64(fl >> PTE_NODE_SHIFT) & 0xFF) - 1 != node:
                set_pte_node(st, base + i, node)


@kernel
def try_to_free_pages(st, start, mask):
    """D8: direct reclaim of SWAP_CLUSTER_MAX pages over the allocation's (restricted)
    list, two passes (the priority escalation: a second look after the first cleared
    the references); a node that gave pages is no longer hopeless for kswapd."""
    left = np.int64(SWAP_CLUSTER_MAX)
    lst = st.fallback[start]
    any_got = False
    for _ in range(2):
        for j in range(lst.size):
            n = np.int64(lst[j])
            if n < 0:
                break
            if mask != 0 and not in_mask(mask, n):
                continue
            if left <= 0:
                break
            got = shrink_node(st, n, WHO_DIRECT, left)
            left -= got
            if got:
                st.numa_nodes[n, N_KSWAPD_FAILURES] = 0
                any_got = True
    if any_got:
        fix_pte_nodes(st)


@kernel
def balance_pgdat(st, node, node_pages):
    """D2: pageoutrun, then reclaim until balanced or a pass after a pass that freed
    nothing frees nothing either; a run that frees nothing counts a failure (16 =
    hopeless)."""
    st.vm[C_PAGEOUTRUN] += 1
    reclaimed = np.int64(0)
    idle = 0
    while not pgdat_balanced(st, node) and idle < 2:
        got = shrink_node(st, node, WHO_KSWAPD, node_pages + 1)
        reclaimed += got
        idle = 0 if got else idle + 1
    if reclaimed:
        st.numa_nodes[node, N_KSWAPD_FAILURES] = 0
        fix_pte_nodes(st)
    else:
        st.numa_nodes[node, N_KSWAPD_FAILURES] += 1


@kernel
def run_kswapds_at(st, t, node_pages):
    """Every pending kswapd due at time t (its wake's next whole ms), in node order."""
    for n in range(st.numa_nodes.shape[0]):
        w = st.numa_nodes[n, N_KSWAPD_WAKE]
        if w >= 0 and (w // 1_000_000 + 1) * 1_000_000 == t:
            st.numa_nodes[n, N_KSWAPD_WAKE] = -1
            balance_pgdat(st, n, node_pages[n])
