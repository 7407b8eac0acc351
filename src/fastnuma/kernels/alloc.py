"""Node choice at allocation time: policy_nodemask / alloc_pages_mpol / get_page_from_freelist.

Every function takes ``st`` (the kernels' :class:`~.state.SimState`) and returns the node that served the allocation, or -1 when none could.
A successful allocation takes the pages from ``st.free`` and counts zone_statistics.
"""
import numpy as np
from numba import types

from ..constants import (MPOL_BIND, MPOL_INTERLEAVE, MPOL_PREFERRED, MPOL_PREFERRED_MANY,
                         MPOL_WEIGHTED_INTERLEAVE)
from ..dtypes import FRAME_FILE, NO_INTERLEAVE_INDEX, NO_POLICY, NS_INTERLEAVE, OPT_MEMORY_TIERING, OPT_NUMA_STAT
from ._jit import apart, kernel
from .reclaim import try_to_free_pages
from .state import new_frame
from .tiering import lru_touch, wake_all_kswapds
from .zone import WMARK_LOW, WMARK_MIN, mask_allows, node_ok, zone_statistics

@kernel(inline="always")
def walk_zonelist(st, start, mask, order, wmark):
    """First node of ``start``'s fallback list allowed by ``mask`` (0 = all) that passes."""
    lst = st.fallback[start]
    for j in range(lst.size):
        n = np.int64(lst[j])
        if n < 0:
            break
        if mask != 0 and not (np.uint64(mask) >> np.uint64(n)) & np.uint64(1):
            continue
        if node_ok(st, n, order, wmark):
            return n
    return np.int64(-1)


@kernel(inline="always")
def preferred_zone_node(st, start, mask):
    """Node of the preferred zone: the first node of start's list that the mask allows."""
    lst = st.fallback[start]
    for j in range(lst.size):
        n = np.int64(lst[j])
        if n < 0:
            break
        if mask_allows(mask, n):
            return n
    return np.int64(-1)


# tiering's direct reclaim, compiled on its first call, not into every allocation (_jit.apart)
try_to_free_pages_apart = apart(try_to_free_pages, types.none)


@kernel
def rmqueue_list(st, start, mask, order, cpu_nid):
    """One allocation attempt over start's list: low pass, then min pass (section 1.7)."""
    n = walk_zonelist(st, start, mask, order, WMARK_LOW)
    if n < 0 and order == 0 and st.opts[OPT_MEMORY_TIERING] != 0:
        wake_all_kswapds(st, start, mask)              # docs/tiering.md A2
    if n < 0:
        n = walk_zonelist(st, start, mask, order, WMARK_MIN)
    if n < 0 and order == 0 and st.opts[OPT_MEMORY_TIERING] != 0:
        try_to_free_pages_apart(st, start, mask)             # docs/tiering.md D8, then min again
        n = walk_zonelist(st, start, mask, order, WMARK_MIN)
    if n >= 0:
        st.free[n] -= np.int64(1) << order
        zone_statistics(st, n, preferred_zone_node(st, start, mask), cpu_nid)
    return n


@kernel(inline="always")
def alloc_thisnode(st, nid, order, cpu_nid):
    """__GFP_THISNODE: node ``nid`` only, no fallback (move_pages, migrate_pages, THP try)."""
    if nid < 0 or st.fallback[nid, 0] != nid:
        return np.int64(-1)
    if node_ok(st, nid, order, WMARK_LOW) or node_ok(st, nid, order, WMARK_MIN):
        st.free[nid] -= np.int64(1) << order
        zone_statistics(st, nid, nid, cpu_nid)
        return nid
    return np.int64(-1)


@kernel
def nth_node(mask, k):
    """The k-th (0-based) set bit of mask, ascending."""
    for n in range(64):
        if (np.uint64(mask) >> np.uint64(n)) & np.uint64(1):
            if k == 0:
                return np.int64(n)
            k -= 1
    return np.int64(-1)


@kernel
def popcount(mask):
    c = 0
    m = np.uint64(mask)
    while m:
        m &= m - np.uint64(1)
        c += 1
    return c


@kernel
def interleave_nid(nodes, ilx):
    """interleave_nid: the (ilx mod |S|)-th node of S ascending (64-bit index)."""
    w = popcount(nodes)
    if w == 0:
        return np.int64(-1)
    return nth_node(nodes, np.int64(np.uint64(ilx) % np.uint64(w)))


@kernel
def weighted_interleave_nid(st, nodes, ilx):
    """weighted_interleave_nid: t = ilx mod sum(w); walk S ascending subtracting weights."""
    total = np.uint64(0)
    for n in range(64):
        if (np.uint64(nodes) >> np.uint64(n)) & np.uint64(1):
            total += np.uint64(st.il_weight[n])
    if total == 0:
        return np.int64(-1)
    t = np.uint64(ilx) % total
    for n in range(64):
        if (np.uint64(nodes) >> np.uint64(n)) & np.uint64(1):
            w = np.uint64(st.il_weight[n])
            if t < w:
                return np.int64(n)
            t -= w
    return np.int64(-1)


@kernel
def alloc_pages_mpol(st, pol_id, cpu, ilx, order, thp_may_reclaim):
    """Allocate 2**order pages for a fault by ``cpu`` under policy ``pol_id``; node or -1.

    Mirrors alloc_pages_mpol / policy_nodemask / alloc_pages_preferred_many
    (mm/mempolicy.c). ``pol_id`` NO_POLICY is the system default (local). For order-9
    (THP) allocations under a non-interleave policy admitting the start node, only that
    node is tried first; on failure the THP fails unless ``thp_may_reclaim``.
    """
    cpu_nid = np.int64(st.cpu_node[cpu])
    start = cpu_nid
    mask = np.uint64(0)
    mode = -1
    if pol_id != NO_POLICY:
        pol = st.policies[pol_id]
        mode = pol["mode"]
        nodes = pol["nodes"]
        if pol["home_node"] >= 0:
            start = np.int64(pol["home_node"])
        if mode == MPOL_PREFERRED:
            start = nth_node(nodes, np.int64(0))
        elif mode == MPOL_BIND:
            mask = nodes
        elif mode == MPOL_INTERLEAVE or mode == MPOL_WEIGHTED_INTERLEAVE:
            if mode == MPOL_INTERLEAVE:
                target = interleave_nid(nodes, ilx)
            else:
                target = weighted_interleave_nid(st, nodes, ilx)
            if target < 0:
                target = cpu_nid
            n = rmqueue_list(st, target, mask, order, cpu_nid)
            if n == target and st.opts[OPT_NUMA_STAT] != 0:
                st.numastat[n, NS_INTERLEAVE] += 1
            return n
        elif mode == MPOL_PREFERRED_MANY:
            n = rmqueue_list(st, start, nodes, order, cpu_nid)   # S first, then any node
            if n >= 0:
                return n
            return rmqueue_list(st, start, np.uint64(0), order, cpu_nid)
    if order > 0 and ilx != NO_INTERLEAVE_INDEX and (
            mask == 0 or (mask >> np.uint64(start)) & np.uint64(1)):
        n = alloc_thisnode(st, start, np.int64(order), cpu_nid)   # one compile for all orders
        if n >= 0 or not thp_may_reclaim:
            return n
    return rmqueue_list(st, start, mask, order, cpu_nid)


@kernel
def next_node_in(node, mask):
    """next_node_in: the next node of mask after ``node``, wrapping; -1 for an empty mask."""
    for k in range(1, 65):
        n = (node + k) % 64
        if (np.uint64(mask) >> np.uint64(n)) & np.uint64(1):
            return np.int64(n)
    return np.int64(-1)


@kernel
def alloc_pages_task(st, pol_id, cpu, il, frames_out, nodes_out):
    """alloc_pages() without a VMA (page cache, kernel data): the task policy with no
    interleave index, so (weighted) interleave takes the per-task round robin
    (interleave_nodes / weighted_interleave_nodes; ``il`` = [il_prev, il_weight], updated).
    One order-0 page per entry of frames_out (its node in nodes_out); returns how many
    were allocated (fewer when memory ran out). With memory tiering the pages are page
    cache (FRAME_FILE) and accessed now: an allocation's direct reclaim may drop them."""
    cpu_nid = np.int64(st.cpu_node[cpu])
    for k in range(frames_out.size):
        mode = st.policies[pol_id]["mode"] if pol_id != NO_POLICY else -1
        if mode == MPOL_INTERLEAVE or mode == MPOL_WEIGHTED_INTERLEAVE:
            nodes = st.policies[pol_id]["nodes"]
            node = il[0]                     # il_prev; MAX_NUMNODES-1 after set_mempolicy
            in_mask = 0 <= node < 64 and (np.uint64(nodes) >> np.uint64(node)) & np.uint64(1)
            if mode == MPOL_INTERLEAVE or il[1] == 0 or not in_mask:
                node = next_node_in(min(node, 63), nodes)
                il[0] = node
                if mode == MPOL_WEIGHTED_INTERLEAVE:
                    il[1] = st.il_weight[node]
            if mode == MPOL_WEIGHTED_INTERLEAVE:
                il[1] -= 1
            n = rmqueue_list(st, node, np.uint64(0), np.int64(0), cpu_nid)
            if n == node and st.opts[OPT_NUMA_STAT] != 0:
                st.numastat[n, NS_INTERLEAVE] += 1
        else:
            n = alloc_pages_mpol(st, pol_id, cpu, NO_INTERLEAVE_INDEX, 0, False)
        if n < 0:
            return k
        f = new_frame(st, n, 0)
        frames_out[k] = f
        nodes_out[k] = n
        if st.opts[OPT_MEMORY_TIERING] != 0:          # docs/tiering.md §7: file LRU
            st.frames[f]["flags"] |= FRAME_FILE
            lru_touch(st, f)
    return frames_out.size
