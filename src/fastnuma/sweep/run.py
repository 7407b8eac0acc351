"""One combination of a sweep -> one run configuration -> one what-if replay -> one result
row (:func:`run_combination`), and what a task needs before it runs: the trace opened by
whoever runs it (:func:`open_source`), its survey (:func:`survey_trace`) and its memory
estimate (:func:`estimate_memory`). Column meanings and units: docs/sweep.md.

A combination's keys are the options of ``fastnuma replay``, with the values those flags
take, mapped onto the sections of a :class:`~fastnuma.runconfig.RunConfig`
(:func:`config_from_params`): ``topology`` -> [machine]; every
:class:`~fastnuma.config.SimConfig` knob -> [kernel]; ``policy`` (``interleave:all``,
``membind:0``, ...: the value of --interleave/--membind/... after the option's name) ->
[policy]; ``cpu_map``, ``cpunodebind``, ``physcpubind`` -> [placement]; ``mlc``,
``mlc_bandwidth``, ``llc`` and ``cost`` (a table of CostModel fields) -> [cost];
``epoch``, ``strict`` -> [replay]; ``batch_rows`` as --batch-rows. The replay is
:func:`fastnuma.whatif.run`, the one ``fastnuma replay`` makes.
"""
import json
import os
import socket
import time
from dataclasses import fields

import numpy as np

from ..config import SimConfig
from ..inputs import PRESETS
from ..trace.remote import is_url

KNOBS = tuple(f.name for f in fields(SimConfig))
#: keys of a combination beyond the kernel knobs, by run-configuration section
CONFIG_KEYS = {"topology": "machine", "policy": "policy", "cpu_map": "placement",
               "cpunodebind": "placement", "physcpubind": "placement", "mlc": "cost",
               "mlc_bandwidth": "cost", "llc": "cost", "cost": "cost", "epoch": "replay",
               "strict": "replay", "batch_rows": "replay"}
RUN_KEYS = tuple(CONFIG_KEYS) + KNOBS
#: the cost model's columns of a row (docs/sweep.md)
COST_COLUMNS = ("memory_accesses", "est_stall_ms", "estimated_time_ns", "stall_thread_ns",
                "bandwidth_bound_epochs", "llc_filter")
DEFAULT_EPOCH = "1000000"
CPU_MAP_NAMES = ("keep", "spread", "pack", "modulo")

# what a replay holds besides its page tables (bytes; docs/sweep.md "Memory")
PTE_BLOCK_BYTES = 512 * 8 + 8 + 4 + 1 + 1 + 4 * 16    # PTEs, key/used/flags, PMD hash
FRAME_BYTES = 12 + 4                                   # FRAME_DTYPE + free-list slot
GROWTH = 3              # tables double: up to 2x their need, and old + new while copying
FIXED_BYTES = 64 << 20  # the simulator's other arrays (frame table starts <= 1M entries)
ROW_BYTES = 2 * 48      # a decoded batch row (all columns), twice: the file's and ours


def config_from_params(params):
    """The :class:`~fastnuma.runconfig.RunConfig` of one combination (see the module
    docstring): what ``fastnuma replay`` builds from the same flags."""
    from ..mlc import read_mlc
    from ..runconfig import RunConfig
    unknown = [k for k in params if k not in RUN_KEYS]
    if unknown:
        raise ValueError(f"unknown run-configuration key {unknown[0]!r}")
    d = {"machine": {}, "kernel": {k: v for k, v in params.items() if k in KNOBS},
         "policy": {}, "placement": {}, "cost": {}, "replay": {}}
    topo = params.get("topology")
    if topo is not None:
        if not isinstance(topo, str) or (topo not in PRESETS and not os.path.exists(topo)):
            raise ValueError(f"topology = {topo!r}: not a preset ({', '.join(PRESETS)}) "
                             f"nor a file")
        kind = "preset" if topo in PRESETS else "sysfs" if os.path.isdir(topo) else \
            "numactl"
        d["machine"] = {kind: topo}
    if "policy" in params:
        d["policy"]["task"] = _text("policy", params["policy"])
    cpu_map = params.get("cpu_map")
    if cpu_map is not None:                        # as --cpu-map: a mode or a file
        cpu_map = _text("cpu_map", cpu_map)
        if cpu_map in CPU_MAP_NAMES:
            d["placement"]["cpu_map"] = cpu_map
        else:
            d["placement"].update(cpu_map="file", file=cpu_map)
    for key in ("cpunodebind", "physcpubind"):
        if key in params:
            d["placement"][key] = _text(key, params[key])
    cost = params.get("cost", {})
    if not isinstance(cost, dict):
        raise ValueError(f"cost = {cost!r}: expected a table of cost-model fields "
                         f"(docs/cost-model.md), e.g. {{local_ns = 120}}")
    d["cost"].update(cost)
    if "mlc" in params:                            # as --mlc: its latency and bandwidth
        if not os.path.isfile(_text("mlc", params["mlc"])):
            raise ValueError(f"mlc = {params['mlc']!r}: no such MLC output file")
        mats = read_mlc(params["mlc"])
        for kind in ("latency", "bandwidth"):
            if kind in mats:
                d["cost"][f"mlc_{kind}"] = params["mlc"]
    if "mlc_bandwidth" in params:
        d["cost"]["mlc_bandwidth"] = _text("mlc_bandwidth", params["mlc_bandwidth"])
    if "llc" in params:
        d["cost"]["llc"] = params["llc"]
    for key in ("epoch", "strict"):
        if key in params:
            d["replay"][key] = str(params[key]) if key == "epoch" else params[key]
    return RunConfig.from_dict(d, source="combination")


def _text(key, value):
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key} = {value!r}: expected text as `fastnuma replay` takes it")
    return value


class _AnyMachine:
    """What a policy's node list is checked against before the machine is known (its
    nodes are checked when the combination runs)."""
    n_nodes = 1 << 10

    @staticmethod
    def memory_nodes():
        return range(1 << 10)


def check_params(params):
    """Raise ValueError/TypeError if ``params`` is not a run configuration this build
    can replay (unknown key, bad knob value, policy, CPU map, cost field, epoch, missing
    machine or MLC file). Node and CPU ids are checked against the machine when the
    combination runs (a failed row names them)."""
    from ..inputs import parse_epoch
    from ..numactl import parse_policy
    config = config_from_params(params)
    SimConfig(**config.kernel)
    parse_policy(config.policy, _AnyMachine)
    parse_epoch(str(params.get("epoch", DEFAULT_EPOCH)))
    for key in ("batch_rows",):
        v = params.get(key, 1)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{key} = {v!r}: expected a positive int")
    if not isinstance(params.get("strict", False), bool):
        raise ValueError(f"strict = {params['strict']!r}: expected true or false")
    if config.placement.file is not None and not os.path.isfile(config.placement.file):
        raise ValueError(f"cpu_map = {config.placement.file!r}: not a mode "
                         f"({', '.join(CPU_MAP_NAMES)}) nor a file")
    for key in ("mlc_latency", "mlc_bandwidth"):
        path = getattr(config.cost, key)
        if path is not None and not os.path.isfile(path):
            raise ValueError(f"{key} = {path!r}: no such MLC output file")


# ------------------------------------------------------------------------- the trace
def open_source(trace):
    """What ``Simulator.replay`` reads: a local path as it is (memory-mapped, as
    ``fastnuma replay`` reads it), a URL (s3://, gs://, hdfs://, file://...) as a
    RecordBatchReader over pyarrow's filesystem for it (fastnuma.trace.remote). The
    caller reads it: in a sweep, the worker that runs the task, never the scheduler."""
    if not is_url(trace):
        return trace
    from ..trace.remote import open_url
    return open_url(trace)


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
def replay_combination(trace, params):
    """The :class:`~fastnuma.report.Report` of one combination (raises on failure): the
    report ``fastnuma replay`` makes with the same flags, with its cost estimate
    (``report.cost``) and provenance."""
    from ..inputs import topology_for
    from ..whatif import run
    check_params(params)
    config = config_from_params(params)
    named = params.get("topology") or topology_for(None, trace)[1]
    report = run(config, trace, batch_rows=params.get("batch_rows", 1 << 20))
    report.topology = f"{named}: {report.topology}"
    return report


def cost_columns(report):
    """{column: value} of :data:`COST_COLUMNS` from the report's cost estimate."""
    c = report.cost
    bound = c["epochs"].column("bound").to_pylist()
    return {"memory_accesses": float(c["memory_accesses"]),
            "est_stall_ms": c["estimated_ns"] / 1e6,
            "estimated_time_ns": float(c["estimated_ns"]),
            "stall_thread_ns": float(c["stall_thread_ns"]),
            "bandwidth_bound_epochs": bound.count("bandwidth"),
            "llc_filter": bool(c["llc_filter"])}


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
                   **cost_columns(report))
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
