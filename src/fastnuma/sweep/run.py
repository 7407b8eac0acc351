"""One combination of a sweep -> one replay -> one result row (:func:`run_combination`),
and what a task needs before it runs: the trace opened by whoever runs it
(:func:`open_source`), its survey (:func:`survey_trace`) and its memory estimate
(:func:`estimate_memory`). Column meanings and units: docs/sweep.md.

Run-configuration keys understood here (values as ``fastnuma replay`` takes them):
``topology`` (a preset name, a ``numactl --hardware`` file or a sysfs node directory;
default: the trace's suggested machine, else four_socket), every
:class:`~fastnuma.config.SimConfig` knob (``numa_balancing``, ``thp``, ``profile``, ...),
``epoch`` (events, or a time such as "100ms"), ``strict`` and ``batch_rows``.

Integration point for issue 14 (the run configuration, numactl-vocabulary policies, CPU
maps and the cost model, built on another branch): :data:`PENDING_KEYS` are refused today.
Once it is merged, :func:`replay_combination` is the one place to change: map the grid's
keys onto that configuration (topology -> machine, knobs -> kernel, epoch/strict/
batch_rows -> replay, policy, cpu_map -> placement, cost.* -> cost) and replay through it;
``_estimated_time`` then reads the report's cost estimate into :data:`COST_COLUMNS`.
"""
import json
import os
import socket
import time
from dataclasses import fields

import numpy as np

from ..config import SimConfig
from ..inputs import PRESETS

KNOBS = tuple(f.name for f in fields(SimConfig))
RUN_KEYS = ("topology", "epoch", "strict", "batch_rows") + KNOBS
#: keys of issue 14's run configuration that this build does not have yet
PENDING_KEYS = ("policy", "cpu_map", "cpunodebind", "physcpubind", "cost", "mlc")
#: filled by the cost model (issue 14) once it exists: nulls until then
COST_COLUMNS = ("estimated_time_ns",)
DEFAULT_EPOCH = "1000000"

# what a replay holds besides its page tables (bytes; docs/sweep.md "Memory")
PTE_BLOCK_BYTES = 512 * 8 + 8 + 4 + 1 + 1 + 4 * 16    # PTEs, key/used/flags, PMD hash
FRAME_BYTES = 12 + 4                                   # FRAME_DTYPE + free-list slot
GROWTH = 3              # tables double: up to 2x their need, and old + new while copying
FIXED_BYTES = 64 << 20  # the simulator's other arrays (frame table starts <= 1M entries)
ROW_BYTES = 2 * 48      # a decoded batch row (all columns), twice: the file's and ours


def check_params(params):
    """Raise ValueError/TypeError if ``params`` is not a run configuration this build
    can replay (unknown key, bad knob value, bad epoch, missing machine file)."""
    from ..inputs import parse_epoch
    for key in params:
        if key in PENDING_KEYS:
            raise ValueError(f"{key!r} belongs to the run configuration of issue 14, which "
                             f"this build does not have yet")
        if key not in RUN_KEYS:
            raise ValueError(f"unknown run-configuration key {key!r}")
    knobs = {k: v for k, v in params.items() if k in KNOBS}
    SimConfig(**knobs)
    parse_epoch(str(params.get("epoch", DEFAULT_EPOCH)))
    for key in ("batch_rows",):
        v = params.get(key, 1)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{key} = {v!r}: expected a positive int")
    if not isinstance(params.get("strict", False), bool):
        raise ValueError(f"strict = {params['strict']!r}: expected true or false")
    topo = params.get("topology")
    if topo is not None and (not isinstance(topo, str) or (
            topo not in PRESETS and not os.path.exists(topo))):
        raise ValueError(f"topology = {topo!r}: not a preset ({', '.join(PRESETS)}) nor "
                         f"a file")


# ------------------------------------------------------------------------- the trace
def open_source(trace):
    """What ``Simulator.replay`` reads: a local path as it is (memory-mapped, as
    ``fastnuma replay`` reads it), a URL (s3://, gs://, hdfs://, file://...) as a
    RecordBatchReader over pyarrow's filesystem for it. The caller reads it: in a sweep,
    the worker that runs the task, never the scheduler."""
    if "://" not in trace:
        return trace
    import pyarrow as pa
    import pyarrow.fs as pafs
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq
    fs, path = pafs.FileSystem.from_uri(trace)
    ext = os.path.splitext(path)[1]
    if ext == ".parquet":
        f = pq.ParquetFile(fs.open_input_file(path))
        return pa.RecordBatchReader.from_batches(f.schema_arrow, f.iter_batches())
    if ext in (".arrow", ".feather"):
        r = ipc.open_file(fs.open_input_file(path))
        return pa.RecordBatchReader.from_batches(
            r.schema, (r.get_batch(i) for i in range(r.num_record_batches)))
    if ext == ".arrows":
        return ipc.open_stream(fs.open_input_stream(path))
    raise ValueError(f"{trace}: unknown trace file type (expected .arrow, .feather, "
                     f".arrows or .parquet)")


def trace_metadata(trace):
    """The trace's schema metadata (str -> str) without reading its data."""
    if "://" in trace:
        src = open_source(trace)
        meta = src.schema.metadata
    else:
        from ..trace.info import read_schema
        from ..trace.reader import trace_files
        meta = read_schema(trace_files(trace)[0]).metadata
    return {k.decode(): v.decode() for k, v in (meta or {}).items()}


def survey_trace(trace, batch_rows=1 << 20):
    """One streaming pass: rows, and the distinct pages and 2 MiB blocks the accesses
    touch per process (what the page tables will hold). Memory grows with the blocks
    touched, not the events (trace.info.PageSet)."""
    from ..constants import OP_WRITE, PAGE_SHIFT
    from ..trace.info import PageSet
    from ..trace.reader import open_trace
    t0 = time.perf_counter()
    pages, rows = {}, 0
    for b in open_trace(open_source(trace), batch_rows):
        rows += len(b)
        access = b.op <= OP_WRITE
        vpn, pid = b.addr[access] >> np.uint64(PAGE_SHIFT), b.pid[access]
        for p in np.unique(pid).tolist():
            mine = pid == p
            pages.setdefault(p, PageSet()).add(vpn if mine.all() else vpn[mine])
    return {"trace": trace, "rows": rows,
            "distinct_pages": sum(len(s) for s in pages.values()),
            "distinct_blocks": sum(s.blocks for s in pages.values()),
            "survey_seconds": time.perf_counter() - t0}


def estimate_memory(survey, params=None):
    """Peak bytes a replay of the surveyed trace needs, from its distinct pages and
    blocks (page tables), not its events (docs/sweep.md "Memory")."""
    batch_rows = (params or {}).get("batch_rows", 1 << 20)
    rows = min(batch_rows, max(survey["rows"], 1))
    tables = survey["distinct_blocks"] * PTE_BLOCK_BYTES + survey["distinct_pages"] * FRAME_BYTES
    return int(GROWTH * tables + FIXED_BYTES + rows * ROW_BYTES)


# ------------------------------------------------------------------------- one replay
def machine(spec, trace):
    """(Topology, its name) as ``fastnuma replay --topology`` picks it."""
    from ..inputs import topology_for
    return topology_for(spec, open_source(trace) if "://" in str(trace) else trace)


def _simulator(trace, params):
    """The machine of one combination. Issue 14's run configuration plugs in here."""
    import fastnuma as fn
    topo, named = machine(params.get("topology"), trace)
    return fn.Simulator(topo, **{k: v for k, v in params.items() if k in KNOBS}), named


def _estimated_time(report, params):
    """{column: value} of :data:`COST_COLUMNS`; None until issue 14's cost model lands."""
    return dict.fromkeys(COST_COLUMNS)


def replay_combination(trace, params):
    """The :class:`~fastnuma.report.Report` of one combination (raises on failure)."""
    from ..inputs import parse_epoch
    check_params(params)
    kind, step = parse_epoch(str(params.get("epoch", DEFAULT_EPOCH)))
    sim, named = _simulator(trace, params)
    report = sim.replay(open_source(trace), batch_rows=params.get("batch_rows", 1 << 20),
                        strict=params.get("strict", False),
                        **({"epoch_events": step} if kind == "events" else {"epoch_ns": step}))
    report.topology = f"{named}: {report.topology}"
    return report


def run_combination(trace, params, key=None, memory_estimate=None):
    """Replay one combination and return its result row (a dict of plain values: no
    simulator or report is kept or shipped). A failure is a row too: ``status`` "failed"
    and ``error`` "ExceptionType: message"."""
    from .grid import combination_key
    from .. import __version__
    row = {"combination": key or combination_key(trace, params), "trace": trace,
           **{k: _cell(v) for k, v in params.items()}}
    t0 = time.perf_counter()
    try:
        report = replay_combination(trace, params)
    except Exception as e:                     # noqa: BLE001 - recorded, the sweep goes on
        row.update(status="failed", error=f"{type(e).__name__}: {e}")
    else:
        row.update(status="ok", error=None, **report_columns(report),
                   **_estimated_time(report, params))
    row.update(seconds=time.perf_counter() - t0, memory_estimate_bytes=memory_estimate,
               worker=f"{socket.gethostname()}:{os.getpid()}", fastnuma_version=__version__)
    return row


def _cell(value):
    """A configuration value as a table cell (tables and lists as JSON text)."""
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value


def report_columns(report):
    """The compare-style columns of a report (docs/sweep.md): events, simulated time,
    accesses and the remote fraction, every vmstat counter, pages per node."""
    m = report.access_matrix
    n = m.shape[0]
    accesses = int(m.sum())
    local = int(sum(m[k, k].sum() for k in range(n)))
    pages = np.zeros(n, np.int64)
    for per_node in report.placement.values():
        pages += per_node
    out = {"machine": report.topology, "nodes": n, "events": int(report.rows),
           "simulated_ns": int(report.now_ns), "accesses": accesses,
           "remote_accesses": accesses - local,
           "remote_fraction": (accesses - local) / accesses if accesses else 0.0}
    out.update((k, int(v)) for k, v in report.vmstat.items())
    out.update(fault_events=len(report.faults), failed_calls=len(report.failed_calls),
               implicit_mappings=int(report.implicit_mappings), epochs=len(report.epochs),
               pages=int(pages.sum()))
    out.update((f"pages_node{k}", int(pages[k])) for k in range(n))
    return out
