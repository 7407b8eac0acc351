"""Checks over trace columns: the first bad row, or -1 (the caller writes the message).

Two implementations of each: numpy (no compiler) and the compiled one in
``_jit_checks.py``, which scans a chunk branch-free and costs a fraction of a nanosecond
per row (numpy's comparisons write a temporary mask: 2-3x the memory traffic). The
compiled one is imported lazily, at the first batch of JIT_MIN_ROWS rows or more, or when
Numba is already loaded (a replay): ``fastnuma --help``, ``info`` and ``convert`` start
without Numba, and a small trace never loads it.
"""
from __future__ import annotations

import sys

import numpy as np


JIT_MIN_ROWS = 1 << 16


def _compiled(n):
    if n < JIT_MIN_ROWS and "numba" not in sys.modules:
        return None
    from . import _jit_checks
    return _jit_checks


def first_decrease(ts: np.ndarray, last) -> int:
    """Index of the first ts[i] smaller than the one before it (ts[-1] := last), or -1."""
    jit = _compiled(ts.size)
    if jit is not None:
        return int(jit.first_decrease(ts, last))
    if not ts.size:
        return -1
    if ts[0] < last:
        return 0
    bad = np.flatnonzero(ts[1:] < ts[:-1])
    return int(bad[0]) + 1 if bad.size else -1


def first_above(values: np.ndarray, limit) -> int:
    """Index of the first value above ``limit``, or -1."""
    jit = _compiled(values.size)
    if jit is not None:
        return int(jit.first_above(values, limit))
    bad = np.flatnonzero(values > limit)
    return int(bad[0]) if bad.size else -1
