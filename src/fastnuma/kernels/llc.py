"""The last-level-cache filter: one set-associative LRU cache per socket (CPU node).

An access reaches memory when its 64-byte line misses its socket's cache. A cache of
``size`` bytes and ``ways`` ways has ``size / (64 * ways)`` sets; line ``a >> 6`` lives in
set ``line % sets``. Every way holds a line tag (-1 empty) and the time of its last use;
a hit refreshes the time, a miss fills the empty or least recently used way. Writes are
treated as reads (write-allocate); coherence between sockets is not modelled (a line may
sit in two sockets' caches), which is the usual first-order simplification of trace-driven
cache models. The state persists across calls (batches), so a replay is filtered in one
pass whatever its batch size.
"""
import numpy as np

from ._jit import kernel

LINE_SHIFT = 6                     # 64-byte lines


def new_cache(sockets, size_bytes, ways):
    """(tags, stamps, clock) arrays for ``sockets`` caches of ``size_bytes`` and ``ways``."""
    if ways < 1 or size_bytes < (64 * ways) or size_bytes % (64 * ways):
        raise ValueError(f"LLC of {size_bytes} bytes and {ways} ways: the size must be a "
                         f"positive multiple of 64 x ways")
    sets = size_bytes // (64 * ways)
    tags = np.full((sockets, sets, ways), -1, np.int64)
    stamps = np.zeros((sockets, sets, ways), np.int64)
    return tags, stamps, np.zeros(1, np.int64)


@kernel
def llc_filter(addr, socket, use, tags, stamps, clock, miss):
    """miss[i] = 1 when access i (``use[i]`` true) misses socket ``socket[i]``'s cache,
    else 0; the caches are updated. Rows with ``use[i]`` false are left out (0)."""
    sets = tags.shape[1]
    ways = tags.shape[2]
    t = clock[0]
    for i in range(addr.size):
        if not use[i]:
            miss[i] = 0
            continue
        s = socket[i]
        line = np.int64(addr[i] >> LINE_SHIFT)
        k = line % sets
        hit = -1
        victim = 0
        oldest = stamps[s, k, 0]
        for w in range(ways):
            if tags[s, k, w] == line:
                hit = w
                break
            if stamps[s, k, w] < oldest:
                oldest = stamps[s, k, w]
                victim = w
        t += 1
        if hit >= 0:
            stamps[s, k, hit] = t
            miss[i] = 0
        else:
            tags[s, k, victim] = line
            stamps[s, k, victim] = t
            miss[i] = 1
    clock[0] = t
