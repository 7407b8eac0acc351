"""The placement heatmap's sampling kernel: pages per node in address buckets of one space.

Called at an epoch boundary (heat.py) over the PTE blocks of one address space, so the
heatmap costs one pass over the mapped page tables per epoch and never slices the trace.
"""
from ..dtypes import PTE_PRESENT, PTRS_PER_PMD, PTRS_PER_PMD_SHIFT
from ._jit import kernel


@kernel
def heat_buckets(ptes, frames, blocks, pmds, lo_vpn, width, out):
    """out[bucket, node] += pages of the address space on that node, bucket = (vpn -
    lo_vpn) // width. ``blocks``: the space's PTE blocks, ``pmds`` their PMD numbers.
    Counted as numa_maps counts (placement): present PTEs with a frame; the zero page
    (no frame) is not a page of the process. A THP counts its 512 base pages."""
    nb = out.shape[0]
    for k in range(blocks.size):
        base = blocks[k] << PTRS_PER_PMD_SHIFT
        first = pmds[k] << PTRS_PER_PMD_SHIFT
        for i in range(PTRS_PER_PMD):
            f = ptes[base + i]["frame"]
            if f < 0 or not ptes[base + i]["flags"] & PTE_PRESENT:
                continue
            b = (first + i - lo_vpn) // width
            if 0 <= b < nb:
                out[b, frames[f]["node"]] += 1
