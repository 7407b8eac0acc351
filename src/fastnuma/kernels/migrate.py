"""Page migration for mbind(MPOL_MF_MOVE*), move_pages(2) and migrate_pages(2).

``migrate_pages`` mirrors mm/migrate.c migrate_pages(): folios go in chunks of at least
512 pages; in each batch every destination is allocated first and the source pages are
freed only after (so a nearly full node cannot lend its own pages back); a THP whose
destination cannot be allocated is split and its base pages retried in one more batch; a
base page that cannot be allocated ends everything with -ENOMEM. A migrated folio keeps
its frame record (so every mapping follows it, as rmap would make them).
"""
import errno

import numpy as np

from ..constants import MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, MPOL_MF_STRICT
from ..dtypes import (C_PGMIGRATE_FAIL, C_PGMIGRATE_SUCCESS, C_THP_MIGRATION_FAIL,
                      C_THP_MIGRATION_SPLIT, C_THP_MIGRATION_SUCCESS, FRAME_DIRTY,
                      FRAME_ISOLATED, FRAME_PTE_DIRTY, PTE_HUGE, PTE_PRESENT, PTRS_PER_PMD,
                      PTRS_PER_PMD_SHIFT, S_FAILED_PAGES, S_SPLIT, S_SUCCEEDED,
                      S_THP_FAILED, S_THP_SPLIT, S_THP_SUCCEEDED, N_STATS, TARGET_NODE,
                      TARGET_POLICY)
from ._jit import kernel
from .alloc import alloc_pages_mpol, alloc_thisnode
from .vma import find_vma, folio_ilx
from .state import block_span, block_vpn, find_block, set_pte_node, split_huge_pmd
from .tiering import reset_stamp_on_tier_change

NR_MAX_BATCHED_MIGRATION = PTRS_PER_PMD


@kernel(inline="always")
def commit_folio_move(st, f, pi, node):
    """The folio f now lives on ``node`` (migrate_folio_move, after the destination was
    allocated): its old pages go back to their node, the PTE at ``pi`` that caches its
    node (-1: none) gets the new one, and a dirty mapping dirties the folio
    (try_to_migrate). Returns the pages moved."""
    nr = np.int64(1) << np.int64(st.frames[f]["order"])
    st.free[st.frames[f]["node"]] += nr
    st.frames[f]["node"] = node
    if pi >= 0:
        set_pte_node(st, pi, node)
    if st.frames[f]["flags"] & FRAME_PTE_DIRTY:
        st.frames[f]["flags"] |= FRAME_DIRTY
    return nr


@kernel
def new_folio_node(st, vmas, f, vpn, how, target, cpu):
    """The destination of folio f: allocated under policy ``target`` as a fault at vpn
    would (alloc_migration_target_by_mpol), or on node ``target`` only (__GFP_THISNODE)."""
    order = np.int64(st.frames[f]["order"])
    vpn = (vpn >> order) << order
    if how == TARGET_POLICY:
        v = find_vma(vmas, vpn, 0)
        ilx = folio_ilx(st, vmas, v, vpn, order) if v >= 0 else np.int64(-1)
        return alloc_pages_mpol(st, target, cpu, ilx, order, True)
    return alloc_thisnode(st, target, order, np.int64(st.cpu_node[cpu]))


@kernel
def split_for_migration(st, asid, f, vpn, out_f, out_v, n_out):
    """split_folio of a THP queued at vpn: its 512 base folios are appended to out_*."""
    b = find_block(st, asid, vpn >> PTRS_PER_PMD_SHIFT)
    split_huge_pmd(st, b)
    base = b << PTRS_PER_PMD_SHIFT
    first = (vpn >> PTRS_PER_PMD_SHIFT) << PTRS_PER_PMD_SHIFT
    for i in range(PTRS_PER_PMD):
        out_f[n_out + i] = st.ptes[base + i]["frame"]
        out_v[n_out + i] = first + i
        st.frames[out_f[n_out + i]]["flags"] |= FRAME_ISOLATED     # still off the LRU
    return n_out + PTRS_PER_PMD


@kernel
def migrate_batch(st, vmas, asid, folios, vpns, lo, hi, how, target, cpu, split_f, split_v,
                  n_split, allow_split, stats, dest):
    """migrate_pages_batch over folios[lo:hi]: allocate every destination, then move.
    Returns (rc, first folio left untried, n_split): rc is -ENOMEM or the number of folios
    that failed (split THPs)."""
    nr_failed = 0
    rc = 0
    left = hi
    for k in range(lo, hi):
        f = folios[k]
        order = np.int64(st.frames[f]["order"])
        node = new_folio_node(st, vmas, f, vpns[k], how, target, cpu)
        dest[k] = node
        if node >= 0:
            continue
        nr_failed += 1
        if order > 0:
            stats[S_THP_FAILED] += 1
            if allow_split:
                n_split = split_for_migration(st, asid, f, vpns[k], split_f, split_v, n_split)
                stats[S_THP_SPLIT] += 1
                stats[S_SPLIT] += 1
                continue
        stats[S_FAILED_PAGES] += np.int64(1) << order
        rc = -errno.ENOMEM
        left = k
        break
    for k in range(lo, left):
        node = dest[k]
        if node < 0:
            continue
        f = folios[k]
        order = np.int64(st.frames[f]["order"])
        pi = np.int64(-1)
        b = find_block(st, asid, vpns[k] >> PTRS_PER_PMD_SHIFT)   # its mapping here
        if b >= 0:                                  # caches the node if it is the only one
            at = (b << PTRS_PER_PMD_SHIFT) + (vpns[k] & (PTRS_PER_PMD - 1))
            if st.ptes[at]["frame"] == f:
                pi = at
        src = np.int64(st.frames[f]["node"])
        stats[S_SUCCEEDED] += commit_folio_move(st, f, pi, node)
        st.frames[f]["flags"] &= ~np.uint8(FRAME_ISOLATED)   # the new folio joins the LRU
        reset_stamp_on_tier_change(st, f, src, node)    # docs/tiering.md S7, every move
        if order > 0:
            stats[S_THP_SUCCEEDED] += 1
    return (rc if rc < 0 else nr_failed), left, n_split


@kernel
def migrate_pages(st, vmas, asid, folios, vpns, how, target, cpu):
    """mm/migrate.c migrate_pages (MIGRATE_SYNC): chunks of at least 512 pages, each as
    one batch, its split THPs as one more batch (no further split). -ENOMEM stops
    everything. Returns -ENOMEM, or how many folios were not migrated (0: all moved).
    Counts pgmigrate_* and thp_migration_*. The folios are isolated from the LRU until
    they move (or to the end, when they do not): the direct reclaim of an allocation for
    one of them cannot take another (isolate_lru_folios skips them)."""
    n = folios.size
    for k in range(n):
        st.frames[folios[k]]["flags"] |= FRAME_ISOLATED
    stats = np.zeros(N_STATS, np.int64)
    dest = np.empty(max(n, 1), np.int64)
    split_f = np.empty(PTRS_PER_PMD, np.int64)     # a chunk holds at most one THP
    split_v = np.empty(PTRS_PER_PMD, np.int64)
    split_dest = np.empty(PTRS_PER_PMD, np.int64)
    rc_gather = 0
    not_moved = 0
    k = 0
    stopped = False
    while k < n:
        lo = k
        pages = 0
        while k < n:
            pages += np.int64(1) << st.frames[folios[k]]["order"]
            k += 1
            if pages >= NR_MAX_BATCHED_MIGRATION:
                break
        astats = np.zeros(N_STATS, np.int64)
        rc, left, n_split = migrate_batch(st, vmas, asid, folios, vpns, lo, k, how, target,
                                          cpu, split_f, split_v, 0, True, astats, dest)
        stats[S_SUCCEEDED] += astats[S_SUCCEEDED]
        stats[S_THP_SUCCEEDED] += astats[S_THP_SUCCEEDED]
        stats[S_THP_SPLIT] += astats[S_THP_SPLIT]
        stats[S_SPLIT] += astats[S_SPLIT]
        if rc < 0:
            stats[S_FAILED_PAGES] += astats[S_FAILED_PAGES]
            stats[S_THP_FAILED] += astats[S_THP_FAILED]
            rc_gather = rc
            stopped = True
            break
        stats[S_THP_FAILED] += astats[S_THP_SPLIT]
        not_moved += k - left
        if n_split:
            _, left2, _ = migrate_batch(st, vmas, asid, split_f, split_v, 0, n_split, how,
                                        target, cpu, split_f, split_v, 0, False, stats,
                                        split_dest)
            not_moved += n_split - left2
            for j in range(n_split):                   # putback_movable_pages
                st.frames[split_f[j]]["flags"] &= ~np.uint8(FRAME_ISOLATED)
        rc_gather += astats[S_SPLIT]
    if not stopped and not_moved == 0:
        rc_gather = 0
    for k in range(n):                                 # the ones not moved go back
        st.frames[folios[k]]["flags"] &= ~np.uint8(FRAME_ISOLATED)
    st.vm[C_PGMIGRATE_SUCCESS] += stats[S_SUCCEEDED]
    st.vm[C_PGMIGRATE_FAIL] += stats[S_FAILED_PAGES]
    st.vm[C_THP_MIGRATION_SUCCESS] += stats[S_THP_SUCCEEDED]
    st.vm[C_THP_MIGRATION_FAIL] += stats[S_THP_FAILED]
    st.vm[C_THP_MIGRATION_SPLIT] += stats[S_THP_SPLIT]
    return rc_gather


@kernel
def queue_pages_range(st, blocks, lo, hi, user_mask, flags, out_frames, out_vpns):
    """queue_folios_pte_range/queue_folios_pmd: collect misplaced folios in [lo, hi).

    Misplaced = node not in the user mask. STRICT without MOVE*: the first misplaced folio
    stops the walk (returns -EIO, its vpn in out_vpns[0]). MOVE skips folios mapped more
    than once (no failure). Returns how many folios were queued (a THP once, at its first
    page)."""
    n = 0
    last = np.int64(-2)
    move = flags & (MPOL_MF_MOVE | MPOL_MF_MOVE_ALL)
    for k in range(blocks.size):
        b = blocks[k]
        base, first, i0, i1 = block_span(st.blk_key, b, lo, hi)
        for i in range(i0, i1):
            fl = st.ptes[base + i]["flags"]
            f = np.int64(st.ptes[base + i]["frame"])
            if not fl & PTE_PRESENT or f < 0 or f == last:
                continue
            last = f
            node = st.frames[f]["node"]
            if (np.uint64(user_mask) >> np.uint64(node)) & np.uint64(1):
                continue
            if not move:
                if flags & MPOL_MF_STRICT:
                    out_vpns[0] = first + i
                    return -errno.EIO
                continue
            if not flags & MPOL_MF_MOVE_ALL and st.frames[f]["mapcount"] > 1:
                continue
            out_frames[n] = f
            out_vpns[n] = first + i
            n += 1
    return n


@kernel
def flush_run(st, vmas, asid, folios, vpns, node, cpu):
    """move_pages_and_store_status: migrate a run to ``node`` (its folios, isolated as
    they were queued, are released by migrate_pages)."""
    return migrate_pages(st, vmas, asid, folios, vpns, TARGET_NODE, node, cpu)


@kernel
def do_pages_move(st, vmas, asid, asid_blocks, asid_pmds, vpns, nodes, move_all, cpu,
                  status, n_nodes, status_ok=True):
    """move_pages(2) with target nodes (do_pages_move): per-page status; runs of equal
    target are migrated with __GFP_THISNODE when the target changes, at a page that is not
    queued, and at the end. Returns 0, -errno for the call (ENODEV: a target without
    memory, after the pending run moved; ENOMEM: a target full), or a positive count when a
    run moved only partly (statuses of that run and after it stay as pre-filled).
    ``status_ok`` False: the status array cannot be written (BAD_ADDRESS); the first
    store_status fails with EFAULT after what precedes it took effect, as in Linux (a
    failed store of a run's statuses comes after its migration; a page's own status ends
    the call, out_flush migrating the pending run first; ENODEV keeps its errno)."""
    queued = np.empty(vpns.size, np.int64)
    q_vpn = np.empty(vpns.size, np.int64)
    nq = 0
    run_node = np.int64(-1)
    run_start = 0
    hint = np.int64(0)
    for i in range(vpns.size + 1):
        d = np.int64(nodes[i]) if i < vpns.size else np.int64(-1)
        if nq and (i == vpns.size or d != run_node):          # flush the queued run
            err = flush_run(st, vmas, asid, queued[:nq], q_vpn[:nq], run_node, cpu)
            nq = 0
            bad = i < vpns.size and (d < 0 or d >= n_nodes or st.fallback[d, 0] != d)
            if err != 0 and not bad:
                return err
            if err == 0:
                if not status_ok:
                    return -errno.ENODEV if bad else -errno.EFAULT
                status[run_start:i] = run_node
        if i == vpns.size:
            break
        if d < 0 or d >= n_nodes or st.fallback[d, 0] != d:
            return -errno.ENODEV             # (the pending run was flushed just above)
        if nq == 0:
            run_node, run_start = d, i
        err = 0
        vpn = vpns[i]
        v = find_vma(vmas, vpn, hint)
        if v < 0:
            err = -errno.EFAULT
        else:
            hint = v
            j = np.searchsorted(asid_pmds, vpn >> PTRS_PER_PMD_SHIFT)
            f = np.int64(-2)
            if j < asid_pmds.size and asid_pmds[j] == vpn >> PTRS_PER_PMD_SHIFT:
                pi = (asid_blocks[j] << PTRS_PER_PMD_SHIFT) + (vpn & (PTRS_PER_PMD - 1))
                if st.ptes[pi]["flags"] & PTE_PRESENT:
                    f = np.int64(st.ptes[pi]["frame"])
            if f == -2:
                err = -errno.ENOENT
            elif f < 0:
                err = -errno.EFAULT
            elif st.frames[f]["node"] == d:
                err = 0
            elif not move_all and st.frames[f]["mapcount"] > 1:
                err = -errno.EACCES
            elif st.frames[f]["flags"] & FRAME_ISOLATED:   # listed twice in the run
                err = -errno.EBUSY
            else:
                st.frames[f]["flags"] |= FRAME_ISOLATED
                queued[nq] = f
                q_vpn[nq] = vpn
                nq += 1
                continue
        if not status_ok:                        # store_status fails: out_flush
            if nq:
                flush_run(st, vmas, asid, queued[:nq], q_vpn[:nq], run_node, cpu)
            return -errno.EFAULT
        status[i] = err if err else d
        if nq:                                   # a page not queued ends the run
            r = flush_run(st, vmas, asid, queued[:nq], q_vpn[:nq], run_node, cpu)
            if r != 0:
                return r
            status[run_start:i] = run_node
            nq = 0
        run_node = -1
    return 0


@kernel
def queue_node_folios(st, blocks, src, move_all, out_frames, out_vpns):
    """migrate_to_node's queue: every folio of the address space on ``src`` (shared ones
    only with MOVE_ALL), in address order, a THP once."""
    n = 0
    for k in range(blocks.size):
        b = blocks[k]
        base = b << PTRS_PER_PMD_SHIFT
        first = block_vpn(st.blk_key, b)
        for i in range(PTRS_PER_PMD):
            fl = st.ptes[base + i]["flags"]
            f = np.int64(st.ptes[base + i]["frame"])
            if not fl & PTE_PRESENT or f < 0 or (fl & PTE_HUGE and i > 0):
                continue
            if st.frames[f]["node"] != src:
                continue
            if not move_all and st.frames[f]["mapcount"] > 1:
                continue
            out_frames[n] = f
            out_vpns[n] = first + i
            n += 1
    return n
