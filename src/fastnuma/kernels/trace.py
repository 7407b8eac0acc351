"""Checks over trace columns: they return the first bad row, Python writes the message."""
from ._jit import kernel


@kernel
def first_decrease(ts, last):
    """Index of the first ts[i] smaller than the one before it (ts[-1] := last), or -1."""
    prev = last
    for i in range(ts.size):
        if ts[i] < prev:
            return i
        prev = ts[i]
    return -1


@kernel
def first_above(values, limit):
    """Index of the first value above ``limit``, or -1."""
    for i in range(values.size):
        if values[i] > limit:
            return i
    return -1
