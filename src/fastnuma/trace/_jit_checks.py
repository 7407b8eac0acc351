"""Checks over trace columns, compiled: they return the first bad row, Python writes the
message. The trace package's own small Numba module (no kernel of the engine), imported
only by trace/checks.py when Numba is already loaded.

Each scans a chunk branch-free first (the compiler vectorises it: the chunk is a slice
indexed from 0, so no index can be negative and needs no wrap-around test) and looks for
the row only in a chunk that has one: a good trace, the usual case, costs a fraction of
a nanosecond per row.
"""
import os

import numba

# as kernels/_jit.py: FASTNUMA_NUMBA_CACHE=0 turns the on-disk cache off
kernel = numba.njit(cache=os.environ.get("FASTNUMA_NUMBA_CACHE", "1") != "0", nogil=True)

CHUNK = 4096


@kernel
def first_decrease(ts, last):
    """Index of the first ts[i] smaller than the one before it (ts[-1] := last), or -1."""
    prev = last
    for c in range(0, ts.size, CHUNK):
        end = min(c + CHUNK, ts.size)
        t = ts[c:end]                 # indices from 0: no wrap-around test per row
        bad = t[0] < prev
        for k in range(t.size - 1):
            bad |= t[k + 1] < t[k]
        if bad:
            p = prev
            for i in range(c, end):
                if ts[i] < p:
                    return i
                p = ts[i]
        prev = ts[end - 1]
    return -1


@kernel
def first_above(values, limit):
    """Index of the first value above ``limit``, or -1."""
    for c in range(0, values.size, CHUNK):
        end = min(c + CHUNK, values.size)
        v = values[c:end]
        bad = False
        for k in range(v.size):
            bad |= v[k] > limit
        if bad:
            for i in range(c, end):
                if values[i] > limit:
                    return i
    return -1
