"""Trace format v1: the columns, their types, defaults and the allowed integer casts.

One table, the single source of truth for readers and writers (as fastparquet keeps one).
"""
import numpy as np

from ..constants import OP_MADVISE

# column -> (numpy dtype, required, default); default None = derived (ts: row, tid: cpu)
COLUMNS = {
    "addr": (np.uint64, True, None),
    "cpu": (np.uint16, True, None),
    "op": (np.uint8, False, 0),
    "ts": (np.uint64, False, None),
    "tid": (np.uint32, False, None),
    "pid": (np.uint32, False, 0),
    "len": (np.uint64, False, 0),
    "mode": (np.uint16, False, 0),
    "nodemask": (np.uint64, False, 0),
    "flags": (np.uint32, False, 0),
}
REQUIRED = tuple(c for c, (_, req, _) in COLUMNS.items() if req)
MAX_OP = OP_MADVISE                         # ops 0..8 are defined by version 1
VERSION = 1
