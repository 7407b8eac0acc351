"""The placement heatmap's data: at every epoch, pages per node in address buckets.

``HeatRecorder.sample`` runs at each epoch boundary of a replay (the report builder calls
it): for every process it cuts the span of its mapped page tables (from the first to the
last 2 MiB PMD that has a PTE table) into ``buckets`` equal address ranges and counts, in
one Numba pass over the PTEs (kernels/heat.py), the pages of each range on each node. The
trace is read once; the cost is one walk of the mapped page tables per epoch.

The result is a long table (one row per epoch, process, bucket and node holding pages;
empty cells are left out), described in docs/report.md:
epoch, end_row, end_ns, pid, bucket, start_addr, end_addr (bytes, end exclusive), node,
pages (4 KiB base pages; a THP counts 512).
"""
import numpy as np
import pyarrow as pa

from .constants import PAGE_SHIFT
from .dtypes import PTRS_PER_PMD_SHIFT
from .kernels.heat import heat_buckets

HEAT_SCHEMA = pa.schema([("epoch", pa.int64()), ("end_row", pa.int64()),
                         ("end_ns", pa.int64()), ("pid", pa.int64()), ("bucket", pa.int64()),
                         ("start_addr", pa.uint64()), ("end_addr", pa.uint64()),
                         ("node", pa.int64()), ("pages", pa.int64())])


def check_buckets(buckets):
    """The bucket count, validated (a positive int, at most 2**20)."""
    if isinstance(buckets, bool) or not isinstance(buckets, (int, np.integer)) \
            or not 1 <= buckets <= 1 << 20:
        raise ValueError(f"heat_buckets must be an int in 1..{1 << 20}, not {buckets!r}")
    return int(buckets)


def bucket_span(pmds, buckets):
    """(lo_vpn, width) of the buckets over the span of ``pmds`` (sorted PMD numbers)."""
    lo = int(pmds[0]) << PTRS_PER_PMD_SHIFT
    hi = (int(pmds[-1]) + 1) << PTRS_PER_PMD_SHIFT
    return lo, -(-(hi - lo) // buckets)


class HeatRecorder:
    """Samples the placement heatmap of a simulator at epoch boundaries."""

    def __init__(self, sim, buckets):
        self.sim = sim
        self.buckets = check_buckets(buckets)
        self.counts = np.zeros((self.buckets, sim.topology.n_nodes), np.int64)  # reused
        self.parts = []

    def sample(self, epoch, end_row, end_ns):
        sim = self.sim
        pt = sim.pt
        for pid, proc in sorted(sim.procs.items()):
            blocks = pt.blocks_of(proc.asid)
            if not blocks.size:
                continue
            pmds = pt.pmds_of(blocks)
            lo, width = bucket_span(pmds, self.buckets)
            out = self.counts
            out[:] = 0
            heat_buckets(pt.ptes, pt.frames, blocks, pmds, lo, width, out)
            bucket, node = np.nonzero(out)
            k = bucket.size
            start = lo + bucket * width
            self.parts.append((np.full(k, epoch), np.full(k, end_row), np.full(k, end_ns),
                               np.full(k, pid), bucket, start << PAGE_SHIFT,
                               (start + width) << PAGE_SHIFT, node, out[bucket, node]))

    def table(self):
        """The samples as one pyarrow Table (HEAT_SCHEMA)."""
        if not self.parts:
            return HEAT_SCHEMA.empty_table()
        cols = [np.concatenate(c) for c in zip(*self.parts)]
        return pa.table([pa.array(c.astype(f.type.to_pandas_dtype()), f.type)
                         for c, f in zip(cols, HEAT_SCHEMA)], schema=HEAT_SCHEMA)
