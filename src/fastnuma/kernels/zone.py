"""Zone watermark checks and NUMA allocation statistics (mm/page_alloc.c
zone_watermark_fast, zone_statistics), shared by the allocator (alloc.py) and reclaim's
demotion allocations (reclaim.py)."""
import numpy as np

from ..dtypes import NS_FOREIGN, NS_HIT, NS_LOCAL, NS_MISS, NS_OTHER, OPT_NUMA_STAT
from ._jit import kernel

WMARK_LOW, WMARK_MIN = 0, 1


@kernel(inline="always")
def mask_allows(mask, n):
    """Node ``n`` is in the nodemask ``mask`` of a zonelist walk (0: no restriction), as
    for_each_zone_zonelist_nodemask filters it."""
    return mask == 0 or (np.uint64(mask) >> np.uint64(n)) & np.uint64(1)


@kernel(inline="always")
def node_ok(st, n, order, wmark):
    """zone_watermark_fast: free pages after the allocation stay above the mark."""
    mark = st.wmark_low[n] if wmark == WMARK_LOW else st.wmark_min[n]
    return st.free[n] - ((np.int64(1) << order) - 1) > mark


@kernel(inline="always")
def zone_statistics(st, node, preferred, cpu_nid):
    """numa_hit/miss/foreign on the serving/preferred node, numa_local/other by CPU node."""
    if st.opts[OPT_NUMA_STAT] == 0:
        return
    if node == preferred or preferred < 0:
        st.numastat[node, NS_HIT] += 1
    else:
        st.numastat[node, NS_MISS] += 1
        st.numastat[preferred, NS_FOREIGN] += 1
    if node == cpu_nid:
        st.numastat[node, NS_LOCAL] += 1
    else:
        st.numastat[node, NS_OTHER] += 1
