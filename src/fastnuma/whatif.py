"""What-if runs and ``fastnuma compare`` (``fastnuma.compare``): one trace (or several)
under several configurations, replayed once each, as one Arrow table (docs/run-config.md
lists the columns and their units).
"""
import os
import re
import threading

import numpy as np
import pyarrow as pa

from .costmodel import TraceCounter, estimate, llc_wanted, trace_pass
from .numactl import parse_policy
from .runconfig import RunConfig, trace_provenance


def in_background(fn, *args):
    """Start ``fn(*args)`` on a daemon thread (the second core: hashing and file reads
    release the GIL) at the lowest scheduling priority (nice 19, where the OS allows it:
    it takes the time the replay's threads leave); returns a function that waits for its
    result or raises its error. Daemon: a failed replay does not wait for it."""
    out = {}

    def target():
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except (AttributeError, OSError):     # not Linux, or not allowed: normal priority
            pass
        try:
            out["value"] = fn(*args)
        except BaseException as e:            # handed to whoever waits for the result
            out["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()

    def result():
        t.join()
        if "error" in out:
            raise out["error"]
        return out["value"]
    return result


def run(config, trace, *, progress=None, batch_rows=None, heat_buckets=None, checkpoint=None,
        checkpoint_every=None, checkpoint_meta=None, resume=None):
    """Replay ``trace`` under ``config`` (a RunConfig or a TOML path) and return its Report
    with ``report.cost`` (the cost estimate, fastnuma.costmodel.estimate) and
    ``report.provenance`` (configuration, resolved machine, trace fingerprint).
    ``checkpoint``, ``checkpoint_every``, ``checkpoint_meta``: Simulator.replay's;
    ``resume``: a checkpoint directory whose replay this run continues (its machine and
    CPU map; docs/checkpoint.md)."""
    import fastnuma as fn
    if not isinstance(config, RunConfig):
        config = RunConfig.from_toml(config)
    if isinstance(trace, pa.RecordBatchReader):
        raise TypeError("a what-if run reads the trace twice (the replay, and the "
                        "fingerprint of its provenance): give a path or a pyarrow Table, "
                        "not a RecordBatchReader")
    from .trace.remote import is_url, open_url
    # a URL (s3://, file://...) is opened afresh for each pass
    source = (lambda: open_url(trace)) if is_url(trace) else (lambda: trace)
    topo = config.topology(trace)
    fingerprint = in_background(trace_provenance, trace)   # reads the whole trace: overlapped
    sim = fn.Simulator(topo, **config.kernel)
    policy = parse_policy(config.policy, topo)
    rows = int(batch_rows or config.replay.get("batch_rows", 1 << 20))
    mapper = None if config.placement.is_identity() else config.placement.mapper(topo, rows)
    if resume is not None:                 # checkpoint_replay.py: the saved machine and map
        from .checkpoint_replay import load_for_resume
        sim, mapper = load_for_resume(resume)
        report = sim.replay(source(), batch_rows=rows, progress=progress, resume=True,
                            checkpoint=checkpoint, checkpoint_every=checkpoint_every)
        # the rows before the checkpoint replayed in another process: a pass of their own
        table = None if mapper is None else mapper.table        # as the replay filled it
        tp = trace_pass(source(), topo, [e[0] for e in report.epochs], config.cost, table,
                        rows)
    else:                                  # the cost model counts each batch as it replays
        src = source()
        counter = TraceCounter(topo, config.cost, llc_wanted(config.cost, src), rows)
        report = sim.replay(src, batch_rows=rows, strict=bool(config.replay.get("strict")),
                            progress=progress, task_policy=policy, cpu_map=mapper,
                            heat_buckets=heat_buckets, checkpoint=checkpoint,
                            checkpoint_every=checkpoint_every, checkpoint_meta=checkpoint_meta,
                            on_batch=counter.add, **config.epoch_kwargs())
        tp = counter.result(len(report.epochs))
    report.cost = estimate(report, tp, topo, config.cost)
    report.cost["llc_filter"] = tp.llc
    lat, bw = config.cost.latency(topo), config.cost.bandwidth(topo)
    report.provenance = {
        "config": config.to_dict(),
        "machine": {"node_pages": list(topo.node_pages),
                    "node_cpus": [list(c) for c in topo.node_cpus],
                    "distance": [list(r) for r in topo.distance],
                    "latency_ns": lat.round(3).tolist(),
                    "bandwidth_gbps": bw.round(3).tolist()},
        "trace": fingerprint(), "llc_filter": tp.llc}
    return report


def cost_summary(report):
    """Lines appended to the replay summary."""
    from .report import summary_line as line          # the summary's value column
    c = report.cost
    bound = c["epochs"].column("bound").to_pylist()
    return "\n".join([
        line("memory accesses", f"{c['memory_accesses']:,.0f}" +
             (" (after the LLC filter)" if c["llc_filter"] else "")),
        line("est. memory stall", f"{c['estimated_ns'] / 1e6:,.3f} ms (wall; "
             f"{bound.count('bandwidth')} of {len(bound)} epochs bandwidth-bound)"),
        line("stall thread-time", f"{c['stall_thread_ns'] / 1e6:,.3f} ms")])


def split_values(key, text):
    """``--vary KEY=V1,V2,...`` values. A policy's node list keeps its commas
    (``policy=default,membind:0,2,interleave:all``: a part starting with a digit, ! or +
    continues the previous value); ``;`` always separates."""
    if ";" in text:
        return [v.strip() for v in text.split(";") if v.strip()]
    if key == "policy" or key.endswith(("cpunodebind", "physcpubind")):
        parts = re.split(r",(?=\s*[A-Za-z])", text) if key == "policy" else [text]
    else:
        parts = text.split(",")
    return [p.strip() for p in parts if p.strip()]


def vary(base, key, values):
    """Configurations that differ from ``base`` in ``key`` only (RunConfig.with_value);
    numeric strings become ints / floats, true/false booleans."""
    out = []
    for v in values:
        if isinstance(v, str):
            low = v.lower()
            if re.fullmatch(r"-?\d+", v):
                v = int(v)
            elif re.fullmatch(r"-?\d+\.\d*(e-?\d+)?", low):
                v = float(v)
            elif low in ("true", "false"):
                v = low == "true"
        out.append(base.with_value(key, v))
    return out


def compare(traces, configs, *, progress=None, batch_rows=None, reports=None):
    """One row per (trace, configuration): see docs/run-config.md for the columns. The
    ratio is to the first configuration's estimate for the same trace. ``reports``: a
    list that receives each run's Report."""
    if isinstance(traces, (str, os.PathLike, pa.Table)):
        traces = [traces]
    configs = [c if isinstance(c, RunConfig) else RunConfig.from_toml(c) for c in configs]
    if not configs:
        raise ValueError("compare needs at least one configuration")
    rows = []
    for trace in traces:
        first = None
        for cfg in configs:
            r = run(cfg, trace, progress=progress, batch_rows=batch_rows)
            if reports is not None:
                reports.append(r)
            est = r.cost["estimated_ns"]
            first = est if first is None else first
            acc = int(r.access_matrix.sum())
            local = int(np.trace(r.access_matrix.sum(axis=2)))
            pages = np.sum(list(r.placement.values()), axis=0) if r.placement else \
                np.zeros(len(r.node_pages), np.int64)
            rows.append({
                "config": cfg.label(), "trace": _trace_name(trace),
                "machine": r.topology, "events": r.rows,
                "pages": [int(x) for x in pages],
                "remote_fraction": (acc - local) / acc if acc else 0.0,
                "numa_hint_faults": r.vmstat["numa_hint_faults"],
                "numa_pages_migrated": r.vmstat["numa_pages_migrated"],
                "pgmigrate_success": r.vmstat["pgmigrate_success"],
                "memory_accesses": r.cost["memory_accesses"],
                "est_stall_ms": est / 1e6,
                "ratio": est / first if first else float("nan")})
    width = max(len(r["pages"]) for r in rows)
    for r in rows:
        pages = r.pop("pages")
        for k in range(width):
            r[f"pages_node{k}"] = pages[k] if k < len(pages) else None
    return pa.Table.from_pylist(rows, schema=_schema(width))


def _schema(width):
    fields = [("config", pa.string()), ("trace", pa.string()), ("machine", pa.string()),
              ("events", pa.int64()), ("remote_fraction", pa.float64()),
              ("numa_hint_faults", pa.int64()), ("numa_pages_migrated", pa.int64()),
              ("pgmigrate_success", pa.int64()), ("memory_accesses", pa.float64()),
              ("est_stall_ms", pa.float64()), ("ratio", pa.float64())]
    fields += [(f"pages_node{k}", pa.int64()) for k in range(width)]
    return pa.schema(fields)


def _trace_name(trace):
    return "<table>" if isinstance(trace, pa.Table) else os.path.basename(
        os.path.normpath(os.fspath(trace)))


def format_table(table):
    """The table as aligned text (numbers right-aligned, strings left-aligned)."""
    cols = [c for c in table.column_names if c != "machine"]
    cells = []
    for row in table.select(cols).to_pylist():
        out = []
        for c in cols:
            v = row[c]
            out.append("-" if v is None else f"{v:.3f}" if isinstance(v, float)
                       else f"{v:,}" if isinstance(v, int) else str(v))
        cells.append(out)
    widths = [max([len(c)] + [len(r[k]) for r in cells]) for k, c in enumerate(cols)]
    num = [not pa.types.is_string(table.schema.field(c).type) for c in cols]
    fmt = lambda vals: "  ".join(v.rjust(w) if n else v.ljust(w)          # noqa: E731
                                 for v, w, n in zip(vals, widths, num)).rstrip()
    return "\n".join([fmt(cols)] + [fmt(r) for r in cells])


def write_table(table, path):
    """Write the comparison as Parquet (.parquet) or CSV (.csv), whole or not at all."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from .outdir import write_file
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".parquet", ".csv"):
        raise ValueError(f"-o {path!r}: expected a .parquet or .csv file")
    if ext == ".parquet":
        write_file(path, lambda f: pq.write_table(table, f))
    else:
        write_file(path, lambda f: pacsv.write_csv(table, f))
