"""What a trace holds, in one streaming pass (``fastnuma info``).

``trace_info(path)`` reads the trace batch by batch through :func:`open_trace` and returns
a :class:`TraceInfo`: schema and metadata, rows, time span, address span of the accesses,
the exact number of distinct pages accessed, thread/CPU/process counts and the count of
every event kind. Memory does not grow with the number of events; it grows with the
number of distinct 2 MiB blocks accessed (see :class:`PageSet`).
"""
import json
import os
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from .. import constants
from ..constants import OP_WRITE, PAGE_SHIFT, PAGE_SIZE
from ..errors import TraceError
from .reader import DEFAULT_BATCH_ROWS, cut_message, open_trace, trace_files
from .schema import MAX_OP
from .writer import FORMATS, META_GENERATOR, META_TOPOLOGY, META_VERSION

__all__ = ["PageSet", "TraceInfo", "trace_info", "read_schema", "OP_NAMES"]

OP_NAMES = {getattr(constants, n): n[3:] for n in dir(constants) if n.startswith("OP_")}
_FORMAT_NAMES = {"file": "Arrow IPC file", "stream": "Arrow IPC stream", "parquet": "Parquet"}
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.uint8)
BLOCK_SHIFT = 9                                   # 512 pages: one PMD, 2 MiB


class PageSet:
    """An exact set of page numbers with memory proportional to the 2 MiB blocks touched.

    Each block that holds a member has a 512-bit bitmap (64 bytes), found through sorted
    runs of block numbers merged as they grow (a log-structured merge: O(log n) runs, each
    block number moved O(log n) times). About 80 bytes per touched block: at most 1/50 of
    the page-table blocks (512 PTEs) the simulator itself keeps for the same pages, so any
    trace that can be replayed can be counted; it does not grow with the number of events.
    """

    def __init__(self):
        self._runs = []                           # [(sorted block numbers, bitmap rows)]
        self._bits = np.zeros((64, 64), np.uint8)
        self._n = 0

    def _lookup(self, blocks):
        rows = np.full(blocks.size, -1, np.int64)
        for keys, slots in self._runs:
            pos = np.minimum(np.searchsorted(keys, blocks), keys.size - 1)
            hit = keys[pos] == blocks
            rows[hit] = slots[pos[hit]]
        return rows

    def _push(self, keys, slots):
        self._runs.append((keys, slots))
        while len(self._runs) > 1 and self._runs[-2][0].size <= 2 * self._runs[-1][0].size:
            k1, s1 = self._runs.pop()
            k0, s0 = self._runs.pop()
            keys, slots = np.concatenate([k0, k1]), np.concatenate([s0, s1])
            order = np.argsort(keys, kind="stable")
            self._runs.append((keys[order], slots[order]))

    def add(self, vpn):
        """Add the page numbers ``vpn`` (a uint64 array)."""
        vpn = np.asarray(vpn, np.uint64)
        if not vpn.size:
            return
        blocks, inverse = np.unique(vpn >> np.uint64(BLOCK_SHIFT), return_inverse=True)
        rows = self._lookup(blocks)
        new = np.flatnonzero(rows < 0)
        if new.size:
            rows[new] = np.arange(self._n, self._n + new.size)
            self._n += new.size
            if self._n > self._bits.shape[0]:
                bits = np.zeros((max(self._n, 2 * self._bits.shape[0]), 64), np.uint8)
                bits[:self._bits.shape[0]] = self._bits
                self._bits = bits
            self._push(blocks[new], rows[new])
        offset = (vpn & np.uint64(511)).astype(np.intp)
        np.bitwise_or.at(self._bits, (rows[inverse.ravel()], offset >> 3),
                         np.left_shift(1, offset & 7).astype(np.uint8))

    def __len__(self):
        total = 0
        for lo in range(0, self._n, 1 << 16):
            rows = self._bits[lo:min(self._n, lo + (1 << 16))]
            total += int(_POPCOUNT[rows].sum(dtype=np.int64))
        return total

    @property
    def blocks(self):
        """The number of 2 MiB blocks holding a member."""
        return self._n


@dataclass
class TraceInfo:
    """The summary :func:`trace_info` returns; ``str()`` gives the report of
    ``fastnuma info``."""
    path: str
    files: list
    format: str
    bytes: int
    schema: pa.Schema
    rows: int = 0
    batches: int = 0
    ts_first: int = None
    ts_last: int = None
    addr_min: int = None
    addr_max: int = None
    accesses: int = 0
    distinct_pages: int = 0
    ops: np.ndarray = field(default_factory=lambda: np.zeros(MAX_OP + 1, np.int64))
    pids: set = field(default_factory=set)
    tids: set = field(default_factory=set)
    cpus: int = 0
    cut: list = field(default_factory=list)       # IPC stream files without end-of-stream

    @property
    def metadata(self):
        """The schema metadata as a str -> str dict."""
        meta = self.schema.metadata or {}
        return {k.decode(errors="replace"): v.decode(errors="replace")
                for k, v in meta.items()}

    def __str__(self):
        meta = self.metadata
        size = f"{self.bytes / 1024:.1f} KiB" if self.bytes < 1 << 20 else \
            f"{self.bytes / (1 << 20):.1f} MiB"
        files = f"{len(self.files)} file{'s' if len(self.files) != 1 else ''}"
        lines = [f"trace:          {self.path} ({self.format}, {files}, {size})"]
        version = meta.get(META_VERSION)
        lines.append("format:         fastnuma trace v" + version if version else
                     "format:         no fastnuma.trace.version metadata (read as v1)")
        for key, label in ((META_GENERATOR, "generator"), (META_TOPOLOGY, "topology")):
            if key in meta:
                lines.append(f"{label + ':':<15} {_compact_json(meta[key])}")
        fields = ", ".join(f"{f.name}: {f.type}" for f in self.schema)
        lines.append(f"schema:         {fields}")
        others = sorted(k for k in meta if not k.startswith(("fastnuma.trace.", "ARROW:")))
        if others:
            lines.append("metadata keys:  " + ", ".join(others))
        lines.append(f"rows:           {self.rows} in {self.batches} "
                     f"batch{'es' if self.batches != 1 else ''}")
        if self.rows:
            if "ts" in self.schema.names:
                span = self.ts_last - self.ts_first
                lines.append(f"time span:      {self.ts_first} .. {self.ts_last} ns "
                             f"({span / 1e9:.6g} s)")
            else:
                lines.append("time span:      no ts column (time = row number)")
        if self.accesses:
            span = self.addr_max - self.addr_min + 1
            lines.append(f"address span:   {self.addr_min:#x} .. {self.addr_max:#x} "
                         f"({_size(span)}) over {self.accesses} accesses")
            per = ", counted per process" if len(self.pids) > 1 else ""
            lines.append(f"distinct pages: {self.distinct_pages} "
                         f"({_size(self.distinct_pages * PAGE_SIZE)}) accessed{per}")
        else:
            lines.append("address span:   no accesses")
        lines.append(f"processes:      {len(self.pids)}, threads: {len(self.tids)}, "
                     f"CPUs: {self.cpus}")
        lines.append("ops:            " + ", ".join(
            f"{OP_NAMES[k]} {int(c)}" for k, c in enumerate(self.ops) if c) if self.rows
            else "ops:            none")
        lines += [f"warning:        {cut_message(path)}" for path in self.cut]
        return "\n".join(lines)


def _compact_json(text):
    try:
        return json.dumps(json.loads(text), sort_keys=True, separators=(", ", ": "))
    except ValueError:
        return text


def _size(n):
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n} B"


def read_schema(path):
    """The Arrow schema (with metadata) of a trace file, read without its data."""
    kind = FORMATS.get(os.path.splitext(path)[1])
    if kind is None:
        raise TraceError("unknown trace file type (expected .arrow, .feather, .arrows or "
                         ".parquet)", path=path)
    try:
        if kind == "parquet":
            return pq.read_schema(path)
        with pa.memory_map(path) as source:
            reader = ipc.open_file(source) if kind == "file" else ipc.open_stream(source)
            return reader.schema
    except (pa.ArrowInvalid, OSError) as e:
        raise TraceError(f"truncated or corrupt trace file: {e}", path=path) from None


def trace_info(source, batch_rows=DEFAULT_BATCH_ROWS):
    """Summarise a trace (file, directory or glob) in one streaming pass."""
    files = trace_files(source)
    kinds = {FORMATS.get(os.path.splitext(f)[1]) for f in files}
    info = TraceInfo(path=os.fspath(source), files=files,
                     bytes=sum(map(os.path.getsize, files)),
                     format=" + ".join(sorted(_FORMAT_NAMES.get(k, "?") for k in kinds)),
                     schema=read_schema(files[0]))
    pages = {}                                     # pid -> PageSet
    cpus = np.zeros(1 << 16, bool)
    for batch in open_trace(source, batch_rows=batch_rows, on_cut=info.cut.append):
        n = len(batch)
        info.batches += 1
        if not n:
            continue
        if info.ts_first is None:
            info.ts_first = int(batch.ts[0])
        info.ts_last = int(batch.ts[-1])
        info.rows += n
        info.ops += np.bincount(batch.op, minlength=MAX_OP + 1)[:MAX_OP + 1]
        cpus[batch.cpu] = True
        info.tids.update(np.unique(batch.tid).tolist())
        info.pids.update(np.unique(batch.pid).tolist())
        access = batch.op <= OP_WRITE
        addr = batch.addr[access]
        if not addr.size:
            continue
        info.accesses += addr.size
        lo, hi = int(addr.min()), int(addr.max())
        info.addr_min = lo if info.addr_min is None else min(info.addr_min, lo)
        info.addr_max = hi if info.addr_max is None else max(info.addr_max, hi)
        vpn = addr >> np.uint64(PAGE_SHIFT)
        pid = batch.pid[access]
        if pid[0] == pid[-1] and (pid == pid[0]).all():
            pages.setdefault(int(pid[0]), PageSet()).add(vpn)
        else:
            for p in np.unique(pid).tolist():
                pages.setdefault(p, PageSet()).add(vpn[pid == p])
    info.distinct_pages = sum(len(s) for s in pages.values())
    info.cpus = int(cpus.sum())
    return info
