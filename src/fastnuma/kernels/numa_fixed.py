"""The hinting fault of a stream whose migration target is fixed (fault_stream.py).

A mbind(MPOL_MF_MOVE | MPOL_MF_LAZY) under a LOCAL, PREFERRED, BIND or PREFERRED_MANY
policy leaves a VMA whose every hinting fault by one CPU asks mpol_misplaced the same
question with the same answer but for the folio's own node: the policy has MPOL_F_MOF
without MPOL_F_MORON (no two-stage filter), so the target is the CPU's node (LOCAL) or a
node of the policy's set, and the folio stays where it is when it is on the target or in
the set. :func:`fixed_target` resolves that once per stream, and :func:`fixed_fault`
takes one such fault of a base page (do_numa_page -> numa_fault_folio ->
migrate_misplaced -> alloc_thisnode -> commit_folio_move in numa.py, migrate.py,
alloc.py) with the policy, the knobs and the target's watermarks already read, reading
and writing the entry once. The counters it would bump are the caller's to add up
(fault_stream.py adds them when the stream ends), so the same faults leave the same
counts as numa.py's path.

It applies only where the knobs that act on such a fault are off: memory tiering (the
promotion rules of docs/tiering.md), the seed's migrate rate limit and shared-page rule.
kernel.numa_balancing may be on: task_numa_fault runs as in numa.py.
"""
import numpy as np

from ..constants import (MPOL_BIND, MPOL_F_MOF, MPOL_F_MORON, MPOL_LOCAL, MPOL_PREFERRED,
                         MPOL_PREFERRED_MANY)
from ..dtypes import (FRAME_DIRTY, FRAME_PTE_DIRTY, NO_POLICY, OPT_MEMORY_TIERING,
                      OPT_MIGRATE_RATE_LIMIT, OPT_SHARED_PAGE_RULE,
                      PTE_DIRTY, PTE_HUGE, PTE_NODE_MASK, PTE_NUMA, TNF_MIGRATE_FAIL,
                      TNF_MIGRATED)
from ._jit import kernel
from .alloc import nth_node, preferred_zone_node
from .numa import node_in, task_numa_fault
from .state import pte_node_bits
from .vma import vma_policy


@kernel(inline="always")
def fixed_target(st, vmas, v, task_pol, this):
    """(target, stay) of the hinting faults in VMA v of a thread (policy ``task_pol``) on
    a CPU of node ``this``: mpol_misplaced sends the folio to ``target`` unless it is on
    it or on a node of the mask ``stay``. (-1, 0) when the answer depends on more (the
    default policy, MPOL_F_MORON, interleaving, no MPOL_F_MOF), when the target has no
    memory (alloc_thisnode always fails) or when a knob named above is on."""
    none = (np.int64(-1), np.uint64(0))
    if (st.opts[OPT_MEMORY_TIERING] != 0 or st.opts[OPT_MIGRATE_RATE_LIMIT] != 0
            or st.opts[OPT_SHARED_PAGE_RULE] != 0):
        return none
    pol = vma_policy(vmas, v, task_pol)
    if pol == NO_POLICY:
        return none
    row = st.policies[pol]
    mode, nodes = row["mode"], np.uint64(row["nodes"])
    if row["flags"] & (MPOL_F_MOF | MPOL_F_MORON) != MPOL_F_MOF:
        return none
    target, stay = np.int64(-1), np.uint64(0)
    if mode == MPOL_LOCAL:
        target = this
    elif mode == MPOL_PREFERRED:
        target, stay = nth_node(nodes, np.int64(0)), nodes
    elif (mode == MPOL_BIND or mode == MPOL_PREFERRED_MANY) and nodes != 0:
        # the first node of this node's fallback list in the set
        target, stay = preferred_zone_node(st, this, nodes), nodes
    if target < 0 or st.fallback[target, 0] != target:
        return none
    return target, stay


@kernel(inline="always")
def room_marks(st, target):
    """The target takes a page while its free count is above both marks returned: its
    high watermark + 1 (migrate_balanced_pgdat; below it the move fails uncounted) and
    its low or min one (alloc_thisnode's watermark test; below it pgmigrate_fail)."""
    return (st.wmark_high[target] + 1,
            min(st.wmark_low[target], st.wmark_min[target]))


@kernel(inline="always")
def fits_fixed(fl, frame):
    """The fault on an entry with flags ``fl`` mapping ``frame`` is fixed_fault's: a base
    page (not a THP's PMD, not a PTE of a large folio)."""
    return not fl & PTE_HUGE and frame["order"] == 0


@kernel(inline="always")
def fixed_fault(st, ptes, frames, pi, fl, f, target, stay, room, w, cpu, slot, balancing):
    """The hinting fault on the marked entry at pi (flags ``fl``, frame f, fits_fixed)
    and its retried access (``w``: a write), for a stream of fixed_target's (target,
    stay). ``room``: the target can take a page (migrate_balanced_pgdat and the watermark
    test of alloc_thisnode, both true while its free count stays above a mark);
    ``balancing``: kernel.numa_balancing is on (task_numa_fault). Returns
    (the folio's node before, its node after, 1 if it moved, 1 if its move failed); the
    caller counts the fault, the allocation and the migration (fault_stream.py)."""
    cur = np.int64(frames[f]["node"])
    old = np.int64(frames[f]["last_cpupid"]) if balancing else np.int64(0)
    fl = fl & ~np.uint32(PTE_NUMA)
    node, moved, failed = cur, 0, 0
    if cur != target and not node_in(stay, cur):
        if room:
            st.free[cur] += 1                           # commit_folio_move
            frames[f]["node"] = target
            if fl & PTE_NODE_MASK:                      # set_pte_node
                fl = (fl & ~np.uint32(PTE_NODE_MASK)) | pte_node_bits(target)
            if frames[f]["flags"] & FRAME_PTE_DIRTY:
                frames[f]["flags"] |= FRAME_DIRTY
            node, moved = target, 1
        else:
            failed = 1
    if w and not fl & PTE_DIRTY:                        # the retried write (set_dirty)
        fl |= PTE_DIRTY
        frames[f]["flags"] |= FRAME_PTE_DIRTY
    ptes[pi]["flags"] = fl
    if balancing:
        task_numa_fault(st, slot, old, node, np.int64(1),
                        TNF_MIGRATED if moved else (TNF_MIGRATE_FAIL if failed else 0), cpu)
    return cur, node, moved, failed
