"""Fuzzing the trace reader and the replay's control rows (hypothesis).

Random traces (random columns, Arrow integer types of every width and sign, edge values:
times at and past 2**62 / 2**63, addresses and lengths that wrap, unknown ops, conflicting
thread ids, absurd node masks), in every container (in-memory table, IPC file, IPC
stream, Parquet), sometimes damaged (a stream cut at a batch boundary, bytes cut off or
flipped). Every outcome must be a clean error (TraceError / ValueError, one line) or a
correct replay: the same outcome at another batch size (the loop's results do not depend
on it; an error at one is an error at the other), and a machine whose invariants (fastnuma.invariants) hold either way.

The suite runs a few dozen examples; the campaign (``-m soak``, or tools/fuzz_campaign.py)
runs ``FASTNUMA_FUZZ_EXAMPLES`` of them.
"""
import os
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import fastnuma as fn
from fastnuma.errors import TraceError
from fastnuma.invariants import check
from fastnuma.trace.reader import TruncatedStreamWarning

BASE = 0x7f0000000000
INT_TYPES = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(),
             pa.uint32(), pa.uint64()]
EDGES = {
    "addr": [0, 4096, BASE, BASE + 4096 * 7 + 5, (1 << 47) - 4096, 1 << 47, (1 << 64) - 4096],
    "cpu": [0, 1, 3, 4, 65535],
    "op": list(range(10)) + [200],
    "ts": [0, 1, 1000, (1 << 62) - 1, 1 << 62, 1 << 63, (1 << 64) - 1],
    "tid": [0, 1, 2, 7],
    "pid": [0, 1, 2],
    "len": [0, 1, 4096, 1 << 21, 1 << 40, (1 << 64) - 4096, (1 << 64) - 1],
    "mode": [0, 1, 2, 3, 4, 5, 6, 7, 0x8000, 0x4000, 65535],
    "nodemask": [0, 1, 2, 3, 5, 1 << 63, (1 << 64) - 1],
    "flags": [0, 0x22, 0x21, 2, 4, 6, 14, 15, 0xFFFFFFFF],
}
MAPF = fn.MAP_PRIVATE | fn.MAP_ANONYMOUS


@st.composite
def traces(draw):
    n = draw(st.integers(0, 24))
    names = ["addr", "cpu"] + draw(st.lists(st.sampled_from(
        ["op", "ts", "tid", "pid", "len", "mode", "nodemask", "flags"]), unique=True))
    cols = {}
    for name in names:
        values = draw(st.lists(st.one_of(st.sampled_from(EDGES[name]),
                                         st.integers(0, 64).map(lambda k: BASE + k * 4096)
                                         if name == "addr" else st.integers(0, 3)),
                               min_size=n, max_size=n))
        if name == "ts" and draw(st.booleans()):
            values.sort()
        typ = draw(st.sampled_from([pa.uint64()] * 4 + INT_TYPES))
        cols[name] = _array(values, typ)
    return pa.table(cols)


def _array(values, typ):
    """``values`` as Arrow type ``typ`` when they fit; else as the smallest that holds
    them (uint64, or int64 never needed: the edges are non-negative)."""
    info = np.iinfo(typ.to_pandas_dtype())
    if values and (max(values) > info.max or min(values) < info.min):
        typ = pa.uint64()
    return pa.array(values, typ)


def _mapping_rows():
    """A mapping and accesses first, so that control rows meet real memory."""
    return pa.table({"addr": pa.array([BASE] + [BASE + 4096 * k for k in range(8)], pa.uint64()),
                     "cpu": pa.array([0] * 9, pa.uint16()),
                     "op": pa.array([fn.OP_MMAP] + [fn.OP_WRITE] * 8, pa.uint8()),
                     "len": pa.array([64 * 4096] + [0] * 8, pa.uint64()),
                     "flags": pa.array([MAPF] + [0] * 8, pa.uint32())})


def _container(tmp, table, kind, damage, cut_rows):
    if kind == "table":
        return table
    path = os.path.join(tmp, {"file": "t.arrow", "stream": "t.arrows",
                              "parquet": "t.parquet"}[kind])
    if kind == "parquet":
        pq.write_table(table, path, row_group_size=max(1, cut_rows))
    else:
        new = ipc.new_file if kind == "file" else ipc.new_stream
        with new(path, table.schema) as w:
            for b in table.to_batches(max_chunksize=max(1, cut_rows)):
                w.write_batch(b)
    if damage:
        data = bytearray(open(path, "rb").read())
        kind_of_damage, where = damage
        pos = where % max(len(data), 1)
        if kind_of_damage == "cut":
            data = data[:pos]
        elif kind_of_damage == "flip" and data:
            data[pos] ^= 0xFF
        elif kind_of_damage == "stream-eos" and kind == "stream":
            data = data[:-8]                 # drop only the end-of-stream marker
        with open(path, "wb") as f:
            f.write(data)
    return path


def _outcome(source, batch_rows, strict):
    sim = fn.Simulator(fn.Topology.uniform(nodes=2, cpus_per_node=2, pages_per_node=4096))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            r = sim.replay(source, batch_rows=batch_rows, strict=strict, epoch_events=5)
            result = ("ok", r.summary(), [tuple(f) for f in r.failed_calls],
                      [tuple(f) for f in r.faults], len(r.epochs))
        except (TraceError, ValueError) as e:
            msg = str(e)
            assert "\n" not in msg and "Traceback" not in msg, msg
            result = ("error", type(e).__name__, msg)
    for w in caught:
        assert issubclass(w.category, TruncatedStreamWarning), w
    check(sim)                                    # consistent whatever happened
    return result + (tuple(str(w.message) for w in caught),)


def fuzz_one(tmp, table, prefix, kind, damage, batch_rows, cut_rows, strict):
    if prefix:
        table = _join(table)
    source = _container(tmp, table, kind, damage, cut_rows)
    a = _outcome(source, batch_rows, strict)
    b = _outcome(source, 1 << 20, strict)
    # a trace fails at every batch size or at none; which error comes first may differ
    # (a batch is checked whole before its rows run), a replay's result may not
    assert a[0] == b[0], (a, b)
    if a[0] == "ok":
        assert a == b, (a, b)
    return a


def _join(table):
    head = _mapping_rows()
    cols = {}
    for name in set(head.column_names) | set(table.column_names):
        h = head.column(name) if name in head.column_names else None
        t = table.column(name) if name in table.column_names else None
        if name == "ts" and h is None:
            h = pa.array([0] * head.num_rows, pa.uint64())
        if name in ("tid",) and h is None:
            h = pa.array([0] * head.num_rows, pa.uint32())
        if name == "pid" and h is None:
            h = pa.array([0] * head.num_rows, pa.uint32())
        if h is None:
            h = pa.array([0] * head.num_rows, pa.uint64())
        if t is None:
            default = {"op": 0, "len": 0, "flags": 0}.get(name, 0)
            if name in head.column_names:
                t = pa.array([default] * table.num_rows, h.type)
            else:
                continue
        typ = pa.uint64() if name not in ("cpu", "op", "flags", "mode") or \
            not pa.types.is_unsigned_integer(t.type) else t.type
        try:
            cols[name] = pa.concat_arrays([pa.array(h.to_pylist(), typ),
                                           pa.array(t.to_pylist(), typ)])
        except (pa.ArrowInvalid, OverflowError):
            cols[name] = pa.concat_arrays([pa.array(h.to_pylist(), pa.uint64()),
                                           pa.array(t.to_pylist(), pa.uint64())])
    return pa.table(cols)


CASES = dict(table=traces(), prefix=st.booleans(),
             kind=st.sampled_from(["table", "file", "stream", "parquet"]),
             damage=st.one_of(st.none(), st.none(), st.tuples(
                 st.sampled_from(["cut", "flip", "stream-eos"]), st.integers(0, 1 << 16))),
             batch_rows=st.integers(1, 9), cut_rows=st.integers(1, 9), strict=st.booleans())


def _seed(**cols):
    return pa.table({k: pa.array(v, pa.uint64()) for k, v in cols.items()})


SEEDS = [   # the hostile cases
    _seed(addr=[BASE, BASE], cpu=[0, 0], ts=[0, 1 << 63]),
    _seed(addr=[BASE, BASE], cpu=[0, 0], ts=[1 << 63, (1 << 63) + 1]),
    _seed(addr=[(1 << 64) - 4096], cpu=[0], op=[fn.OP_MOVE_PAGES], len=[8192], nodemask=[2]),
    _seed(addr=[BASE], cpu=[0], op=[fn.OP_MOVE_PAGES], len=[1 << 40], nodemask=[2]),
    _seed(addr=[BASE], cpu=[0], op=[fn.OP_MBIND], len=[(1 << 64) - 1], mode=[2],
          nodemask=[(1 << 64) - 1]),
]


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(**CASES)
@example(table=SEEDS[0], prefix=False, kind="stream", damage=None, batch_rows=1, cut_rows=1,
         strict=False)
@example(table=SEEDS[1], prefix=False, kind="parquet", damage=None, batch_rows=3,
         cut_rows=1, strict=False)
@example(table=SEEDS[2], prefix=True, kind="file", damage=None, batch_rows=2, cut_rows=4,
         strict=False)
@example(table=SEEDS[3], prefix=True, kind="table", damage=None, batch_rows=4, cut_rows=4,
         strict=True)
@example(table=SEEDS[4], prefix=True, kind="stream", damage=("stream-eos", 0), batch_rows=4,
         cut_rows=2, strict=True)
@example(table=SEEDS[0], prefix=True, kind="stream", damage=("cut", 300), batch_rows=2,
         cut_rows=2, strict=False)
def test_fuzz_trace_reader_and_control_rows(tmp_path_factory, table, prefix, kind, damage,
                                            batch_rows, cut_rows, strict):
    fuzz_one(str(tmp_path_factory.mktemp("fuzz")), table, prefix, kind, damage, batch_rows,
             cut_rows, strict)


CAMPAIGN = int(os.environ.get("FASTNUMA_FUZZ_EXAMPLES", "20000"))


@pytest.mark.soak
@settings(max_examples=CAMPAIGN, deadline=None, suppress_health_check=list(HealthCheck),
          database=None)
@given(**CASES)
def test_fuzz_campaign(tmp_path_factory, table, prefix, kind, damage, batch_rows, cut_rows,
                       strict):
    fuzz_one(str(tmp_path_factory.mktemp("fuzz")), table, prefix, kind, damage, batch_rows,
             cut_rows, strict)
