"""Page migration for mbind(MPOL_MF_MOVE*), move_pages(2) and migrate_pages(2).

A migrated folio keeps its frame record (so every mapping follows it, as rmap would make
them); its pages are allocated on the target node (counted like any allocation, with the
calling thread's CPU as "local") and given back on the source node.
"""
import errno

import numpy as np

from ..constants import MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, MPOL_MF_STRICT
from ..dtypes import (C_PGMIGRATE_FAIL, C_PGMIGRATE_SUCCESS, C_THP_MIGRATION_FAIL,
                      C_THP_MIGRATION_SUCCESS, PTE_HUGE, PTE_PRESENT, PTRS_PER_PMD,
                      PTRS_PER_PMD_SHIFT)
from ._jit import kernel
from .alloc import alloc_pages_mpol, alloc_thisnode
from .fault import find_vma, ilx_of


@kernel
def move_folio(st, f, node):
    """The pages of folio f now live on ``node`` (already allocated there)."""
    order = st.frames[f]["order"]
    st.free[st.frames[f]["node"]] += np.int64(1) << order
    st.frames[f]["node"] = node
    st.vm[C_PGMIGRATE_SUCCESS] += np.int64(1) << order
    if order > 0:
        st.vm[C_THP_MIGRATION_SUCCESS] += 1


@kernel
def migrate_failed(st, order):
    st.vm[C_PGMIGRATE_FAIL] += np.int64(1) << order
    if order > 0:
        st.vm[C_THP_MIGRATION_FAIL] += 1


@kernel
def queue_pages_range(st, blocks, lo, hi, user_mask, flags, out_frames, out_vpns):
    """queue_folios_pte_range/queue_folios_pmd: collect misplaced folios in [lo, hi).

    Misplaced = node not in the user mask. STRICT without MOVE*: the first misplaced folio
    stops the walk (returns -EIO). MOVE skips folios mapped more than once (no failure).
    Returns how many folios were queued (each once: a THP is queued at its first PTE)."""
    n = 0
    last = np.int64(-2)
    move = flags & (MPOL_MF_MOVE | MPOL_MF_MOVE_ALL)
    for k in range(blocks.size):
        b = blocks[k]
        base = b << PTRS_PER_PMD_SHIFT
        first = (st.blk_key[b] & ((1 << 27) - 1)) << PTRS_PER_PMD_SHIFT
        for i in range(max(lo - first, 0), min(hi - first, PTRS_PER_PMD)):
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
def migrate_to_policy(st, vmas, frames, vpns, pol_id, cpu):
    """alloc_migration_target_by_mpol for each queued folio, then move it.

    Returns how many folios moved; a destination allocation failure stops the whole
    migration (the rest stay untried), as migrate_pages_batch's -ENOMEM does."""
    hint = np.int64(0)
    for k in range(frames.size):
        f = frames[k]
        order = np.int64(st.frames[f]["order"])
        vpn = (vpns[k] >> order) << order
        v = find_vma(vmas, vpn, hint)
        hint = max(v, 0)
        ilx = ilx_of(vmas, v, vpn, order) if v >= 0 else np.int64(-1)
        node = alloc_pages_mpol(st, pol_id, cpu, ilx, order, True)
        if node < 0:
            migrate_failed(st, order)
            return k
        move_folio(st, f, node)
    return frames.size


@kernel
def do_pages_move(st, vmas, asid_blocks, asid_pmds, vpns, nodes, move_all, cpu,
                  status, n_nodes):
    """move_pages(2) with target nodes: per-page status, runs of equal target migrated with
    __GFP_THISNODE. Returns 0, or -errno for the call (ENODEV, ENOMEM); statuses of pages
    not reached stay as given (the caller pre-fills them)."""
    queued = np.empty(vpns.size, np.int64)
    q_idx = np.empty(vpns.size, np.int64)
    nq = 0
    run_node = np.int64(-1)
    in_run = False
    hint = np.int64(0)
    for i in range(vpns.size + 1):
        d = np.int64(nodes[i]) if i < vpns.size else np.int64(-1)
        if i == vpns.size or not in_run or d != run_node:       # flush the queued run
            for k in range(nq):
                f = queued[k]
                if alloc_thisnode(st, run_node, np.int64(st.frames[f]["order"]),
                                  np.int64(st.cpu_node[cpu])) < 0:
                    migrate_failed(st, np.int64(st.frames[f]["order"]))
                    return -errno.ENOMEM
                move_folio(st, f, run_node)
                status[q_idx[k]] = run_node
            nq = 0
            if i == vpns.size:
                break
            run_node = d
            in_run = True
            if d < 0 or d >= n_nodes or st.fallback[d, 0] != d:
                return -errno.ENODEV
        vpn = vpns[i]
        v = find_vma(vmas, vpn, hint)
        if v < 0:
            status[i] = -errno.EFAULT
            continue
        hint = v
        j = np.searchsorted(asid_pmds, vpn >> PTRS_PER_PMD_SHIFT)
        if j >= asid_pmds.size or asid_pmds[j] != vpn >> PTRS_PER_PMD_SHIFT:
            status[i] = -errno.ENOENT
            continue
        pi = (asid_blocks[j] << PTRS_PER_PMD_SHIFT) + (vpn & (PTRS_PER_PMD - 1))
        fl = st.ptes[pi]["flags"]
        f = np.int64(st.ptes[pi]["frame"])
        if not fl & PTE_PRESENT:
            status[i] = -errno.ENOENT
            continue
        if f < 0:
            status[i] = -errno.EFAULT
            continue
        if st.frames[f]["node"] == d:
            status[i] = d
            continue
        if not move_all and st.frames[f]["mapcount"] > 1:
            status[i] = -errno.EACCES
            continue
        dup = False
        for k in range(nq):
            if queued[k] == f:
                dup = True
        if dup:
            status[i] = -errno.EBUSY
            continue
        queued[nq] = f
        q_idx[nq] = i
        nq += 1
    return 0


@kernel
def migrate_node(st, blocks, src, dst, move_all, cpu):
    """migrate_to_node: every folio of the address space on ``src`` moves to ``dst``
    (__GFP_THISNODE); shared folios only with MOVE_ALL. Returns folios not moved (>= 0) or
    -ENOMEM when a destination allocation failed (earlier folios stay moved)."""
    cpu_nid = np.int64(st.cpu_node[cpu])
    for k in range(blocks.size):
        base = blocks[k] << PTRS_PER_PMD_SHIFT
        for i in range(PTRS_PER_PMD):
            fl = st.ptes[base + i]["flags"]
            f = np.int64(st.ptes[base + i]["frame"])
            if not fl & PTE_PRESENT or f < 0 or (fl & PTE_HUGE and i > 0):
                continue
            if st.frames[f]["node"] != src:
                continue
            if not move_all and st.frames[f]["mapcount"] > 1:
                continue
            order = np.int64(st.frames[f]["order"])
            if alloc_thisnode(st, dst, order, cpu_nid) < 0:
                migrate_failed(st, order)
                return -errno.ENOMEM
            move_folio(st, f, dst)
    return 0
