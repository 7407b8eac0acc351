"""The cost model's counts over the trace (costmodel.TraceCounter): one pass per batch,
as the replay goes, so a what-if run reads its trace once.

Per row: the epoch it belongs to (rows before ``ends[e]`` are epoch e's), its CPU, whether
it is an access, and the accesses it stands for that reach memory (``count``, when the
LLC filter lets it through). Per thread, tids below ``DIRECT_TIDS`` index the counts
directly (Linux's pid_max is 32768 by default, 1024 per CPU on larger machines: traced
tids are small); a larger tid goes through an open-addressing table (``keys``, -1 empty)
that gives it a place after them. A table lookup per row costs three times the rest of
the row (benchmarks/README.md, "2026-12-07, later").
"""
import numpy as np

from ..constants import OP_WRITE
from ._jit import kernel
from .events import first_at_or_after

DIRECT_TIDS = 1 << 16
_HASH = np.uint64(0x9E3779B97F4A7C15)    # Fibonacci hashing of the tid
_NO_END = np.int64(2**63 - 1)
#: t_epoch of a thread not seen yet, and of one seen with no access yet
NOT_SEEN, NO_ACCESS = -2, -1


@kernel
def _flush(e, cpu_node, n_cpu, w_cpu, N, W):
    """Add the per-CPU counts of epoch ``e`` to its node rows and clear them."""
    for c in range(n_cpu.size):
        N[e, cpu_node[c]] += n_cpu[c]
        W[e, cpu_node[c]] += w_cpu[c]
        n_cpu[c] = 0
        w_cpu[c] = 0


@kernel
def count_events(start, row0, op, cpu, tid, count, reach, cpu_node, ends, N, W, P, t_events,
                 t_weight, t_epoch, keys, ids, n_hashed, n_cpu, w_cpu):
    """Count rows ``start..`` of a batch whose first row is ``row0`` into N[e, node]
    (access events), W[e, node] (accesses reaching memory), P[e] (threads with an access
    event) and per thread: t_events, t_weight, t_epoch (the last epoch the thread was
    counted in P, NO_ACCESS or NOT_SEEN), at the tid for tids below ``DIRECT_TIDS``, at
    ``DIRECT_TIDS`` + the table's index for the others.
    ``reach[i]``: the LLC filter's miss flag (None: every access reaches memory).
    ``count``: None for 1 per event. Within an epoch rows are counted per CPU (``n_cpu``,
    ``w_cpu``: zero on entry, left zero) and added to their node's row at its end: consecutive rows of different CPUs then add to
    different places, where counting per node would chain every add through the last.
    The per-row code calls nothing: a call passes its arrays with reference counts.

    Returns the first row not counted: the batch's size when done, earlier when the
    table of large tids must grow first (half full, or the thread arrays full), or
    ``-1 - i`` when row i's CPU is not in ``cpu_node``."""
    mask = keys.size - 1
    e = first_at_or_after(ends, 0, ends.size, row0 + start + 1)   # the first end above
    next_end = ends[e] if e < ends.size else _NO_END
    for i in range(start, op.size):
        if row0 + i >= next_end:
            _flush(e, cpu_node, n_cpu, w_cpu, N, W)
            while e < ends.size and row0 + i >= ends[e]:
                e += 1
            next_end = ends[e] if e < ends.size else _NO_END
        c = cpu[i]
        if c >= cpu_node.size:
            _flush(e, cpu_node, n_cpu, w_cpu, N, W)
            return -1 - i
        x = np.int64(tid[i])
        if x >= DIRECT_TIDS:                        # a large tid: its table index
            h = np.int64((np.uint64(x) * _HASH) >> np.uint64(40)) & mask
            while keys[h] != x and keys[h] != -1:
                h = (h + 1) & mask
            if keys[h] == -1:
                if 2 * (n_hashed[0] + 1) > keys.size or \
                        DIRECT_TIDS + n_hashed[0] == t_events.size:
                    _flush(e, cpu_node, n_cpu, w_cpu, N, W)
                    return i                        # row i not counted: grow, come back
                keys[h] = x
                ids[h] = n_hashed[0]
                n_hashed[0] += 1
            x = DIRECT_TIDS + ids[h]
        if op[i] <= OP_WRITE:                       # OP_READ or OP_WRITE: an access
            w = 0
            if reach is None or reach[i]:
                w = 1 if count is None else np.int64(count[i])
            n_cpu[c] += 1
            w_cpu[c] += w
            t_events[x] += 1
            t_weight[x] += w
            if t_epoch[x] != e:
                t_epoch[x] = e
                P[e] += 1
        elif t_epoch[x] == NOT_SEEN:
            t_epoch[x] = NO_ACCESS
    _flush(e, cpu_node, n_cpu, w_cpu, N, W)
    return op.size
