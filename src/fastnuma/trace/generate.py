"""Synthetic traces (format v1): seeded scenarios streamed as bounded RecordBatches.

``generate(scenario, events, seed=0, **params)`` yields ``pyarrow.RecordBatch`` objects of
at most ``batch_rows`` rows; ``write_trace(path, scenario, events, seed, **params)`` writes
them with :class:`~fastnuma.trace.writer.TraceWriter` (atomic). Every row is computed by
numpy per chunk of :data:`CHUNK` rows (never per event in Python) from one
``numpy.random.default_rng(seed)`` consumed in a fixed order, so the events depend on the
scenario, ``events``, ``seed`` and the parameters only, not on ``batch_rows``; memory is
bounded by ``batch_rows + CHUNK`` rows whatever ``events`` is.

Parameters: ``events`` (the exact number of rows), ``seed``, the keywords of
:data:`COMMON` and each scenario's own (:data:`SCENARIOS`, documented in
:mod:`fastnuma.trace.scenarios`). The schema metadata of a written trace records them all
(``fastnuma.trace.generator``) with a suggested machine (``fastnuma.trace.topology``).
"""
import numpy as np
import pyarrow as pa

from .scenarios import BASE_ADDR, MAX_PAGES, SCENARIOS, check_int
from .schema import COLUMNS
from .writer import TraceWriter, trace_schema

__all__ = ["generate", "write_trace", "scenario_params", "suggested_topology", "SCENARIOS",
           "BASE_ADDR", "COMMON", "CHUNK", "DEFAULT_BATCH_ROWS"]

CHUNK = 1 << 16
DEFAULT_BATCH_ROWS = 1 << 16
COMMON = {"nodes": 4, "cpus_per_node": 4, "pages": 4096, "threads": None,
          "ns_per_event": 1000, "bare": False, "batch_rows": DEFAULT_BATCH_ROWS}


def scenario_params(scenario, events, seed=0, **params):
    """The complete, checked parameters of a scenario (defaults filled in)."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r} (expected one of "
                         f"{', '.join(SCENARIOS)})")
    own = SCENARIOS[scenario][1]
    unknown = sorted(set(params) - set(COMMON) - set(own))
    if unknown:
        raise ValueError(f"scenario {scenario!r} takes no parameter {unknown[0]!r} (it takes "
                         f"{', '.join(sorted(set(COMMON) | set(own)))})")
    p = {**COMMON, **own, **params, "scenario": scenario}
    p["events"] = check_int("events", events, 0, 1 << 62)
    p["seed"] = check_int("seed", seed, 0, (1 << 63) - 1)
    check_int("nodes", p["nodes"], 1, 64)
    check_int("cpus_per_node", p["cpus_per_node"], 1, 8192 // p["nodes"])
    check_int("pages", p["pages"], 1, MAX_PAGES)
    check_int("ns_per_event", p["ns_per_event"], 0, 1 << 40)
    check_int("batch_rows", p["batch_rows"], 1, 1 << 26)
    for name in ("phases",):
        if name in p:
            check_int(name, p[name], 1, 1 << 20)
    wf = p.get("write_fraction", 0.0)
    if not isinstance(wf, (int, float)) or isinstance(wf, bool) or not 0.0 <= wf <= 1.0:
        raise ValueError(f"write_fraction = {wf!r}; allowed range is 0.0..1.0")
    if "exponent" in p and not (isinstance(p["exponent"], (int, float))
                                and 0 < p["exponent"] <= 100):
        raise ValueError(f"exponent = {p['exponent']!r}; must be a number in (0, 100]")
    for name in ("bare", "init"):
        if name in p and not isinstance(p[name], bool):
            raise TypeError(f"{name} must be True or False, not {p[name]!r}")
    return p


def _columns(bare):
    return ("addr", "cpu") if bare else tuple(COLUMNS)


def generate(scenario, events, seed=0, **params):
    """Yield the trace of ``scenario`` as RecordBatches of at most ``batch_rows`` rows.

    Parameters: ``events`` (rows), ``seed``, and the keywords of :data:`COMMON`
    (``nodes``, ``cpus_per_node``, ``pages``, ``threads``, ``ns_per_event``, ``bare``,
    ``batch_rows``) plus the scenario's own (see :data:`SCENARIOS` and each scenario's
    docstring). Checked eagerly: a bad parameter raises here, not at the first batch.
    """
    p = scenario_params(scenario, events, seed, **params)
    segments = SCENARIOS[scenario][0](p)
    return _batches(segments, p)


def _batches(segments, p):
    rng = np.random.default_rng(p["seed"])
    names = _columns(p["bare"])
    schema = trace_schema(names)
    batch_rows, ns = p["batch_rows"], p["ns_per_event"]
    pending, count, t0 = [], 0, 0
    for seg in segments:
        for i0 in range(0, seg.n, CHUNK):
            i = np.arange(i0, min(seg.n, i0 + CHUNK), dtype=np.int64)
            cols = seg.fill(rng, i)
            cols["ts"] = (t0 + (i // seg.width) * ns).astype(np.uint64)
            if "count" in names and "count" not in cols:   # unsampled: one access each
                cols["count"] = np.ones(i.size, np.uint32)
            pending.append({name: cols[name] for name in names})
            count += i.size
            if count >= batch_rows:
                merged = _concat(pending)
                while count >= batch_rows:
                    yield _record_batch(merged, 0, batch_rows, schema)
                    merged = {k: v[batch_rows:] for k, v in merged.items()}
                    count -= batch_rows
                pending = [merged] if count else []
        if seg.n:
            t0 += ((seg.n - 1) // seg.width + 1) * ns
    if count:
        yield _record_batch(_concat(pending), 0, count, schema)


def _concat(pieces):
    if len(pieces) == 1:
        return pieces[0]
    return {k: np.concatenate([piece[k] for piece in pieces]) for k in pieces[0]}


def _record_batch(cols, lo, hi, schema):
    return pa.RecordBatch.from_arrays([pa.array(cols[f.name][lo:hi]) for f in schema],
                                      schema=schema)


def suggested_topology(p):
    """A machine the trace fits: ``Topology.uniform`` keywords plus ``"preset"``; every
    node can hold the whole working set twice over (at least the preset's 2**18 pages)."""
    return {"preset": "uniform", "nodes": p["nodes"], "cpus_per_node": p["cpus_per_node"],
            "pages_per_node": max(1 << 18, 2 * p["pages"])}


def write_trace(path, scenario, events, seed=0, *, format=None, compression=None, **params):
    """Write ``generate(scenario, events, seed, **params)`` to ``path`` atomically (see
    TraceWriter); the schema metadata records the parameters and a suggested topology.
    Returns the number of rows written."""
    p = scenario_params(scenario, events, seed, **params)
    batches = _batches(SCENARIOS[scenario][0](p), p)
    generator = {k: v for k, v in p.items() if k != "batch_rows"}
    generator["generator"] = "fastnuma.trace.generate"
    with TraceWriter(path, format, columns=_columns(p["bare"]), generator=generator,
                     topology=suggested_topology(p), compression=compression) as w:
        for batch in batches:
            w.write(batch)
    return w.rows
