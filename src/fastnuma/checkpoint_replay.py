"""Checkpointed and resumed replays (docs/checkpoint.md): ``Simulator.replay(...,
checkpoint=DIR, checkpoint_every=N)`` and ``replay(resume=True)`` after
``Simulator.load(DIR)``.

Checkpoints fall exactly after events N, 2N, 3N, ... of the trace (counted from its first
row, so a resumed replay keeps the same grid): the batch holding event k*N is split there.
That is safe because the event loop stops at the same events whatever the batches are
(replay.py). A checkpoint holds the machine, the replay's own state (time base, epoch
clocks, the report so far), the position, and a fingerprint of the trace; resuming reads
the trace again from its start, skips the rows already replayed, and continues.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os

import numpy as np
import pyarrow as pa

from . import checkpoint as ckpt
from .trace.reader import TraceBatch, trace_files

_EDGE = 1 << 20                 # bytes of each file's start and end in the fingerprint


@dataclasses.dataclass
class Pending:
    """A replay loaded from a checkpoint, not resumed yet: the replay's state (``run``: a
    dict with the replay._Replay and its batch remapper), the manifest's entries
    (``info``: "replay", "meta"), its directory."""
    run: dict
    info: dict
    path: str


def load_for_resume(path):
    """(simulator, its replay's batch remapper or None) loaded from checkpoint ``path``."""
    from .engine import Simulator
    sim = Simulator.load(path)
    pending = ckpt.pending(sim)
    if pending is None:
        raise ValueError(f"checkpoint {path}: holds no replay to resume")
    return sim, pending.run["remap"]


def trace_fingerprint(source) -> dict:
    """What identifies a trace: per file its name, size and the SHA-256 of its first and
    last MiB (a copied file matches, a changed one does not; reading 2 MiB per file, not
    the whole trace); for a pyarrow Table, the SHA-256 of every column."""
    if isinstance(source, pa.RecordBatchReader):
        raise ValueError("a checkpointed replay needs a trace it can read again (a path or "
                         "a pyarrow Table), not a RecordBatchReader")
    if isinstance(source, pa.Table):
        h = hashlib.sha256(str(source.schema).encode())
        for name in source.column_names:
            for chunk in source.column(name).chunks:
                h.update(np.ascontiguousarray(chunk.to_numpy(zero_copy_only=False)).data)
        return {"kind": "table", "rows": source.num_rows, "sha256": h.hexdigest()}
    files = []
    for path in trace_files(source):
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = hashlib.sha256(f.read(_EDGE)).hexdigest()
            f.seek(max(0, size - _EDGE))
            tail = hashlib.sha256(f.read(_EDGE)).hexdigest()
        files.append({"name": os.path.basename(path), "bytes": size, "head_sha256": head,
                      "tail_sha256": tail})
    return {"kind": "files", "files": files}


def _difference(saved: dict, now: dict) -> str | None:
    """How ``now`` differs from ``saved`` (fingerprints), in a few words; None if equal."""
    if saved == now:
        return None
    if saved.get("kind") != now.get("kind"):
        return f"the checkpoint's trace was a {saved.get('kind')}, this is a {now.get('kind')}"
    if now["kind"] == "table":
        return f"table of {now['rows']} rows, content differs from the checkpoint's"
    a, b = saved["files"], now["files"]
    if len(a) != len(b):
        return f"{len(b)} files, the checkpoint's trace had {len(a)}"
    for x, y in zip(a, b):
        if x != y:
            what = ("name" if x["name"] != y["name"] else "size" if x["bytes"] != y["bytes"]
                    else "content")
            return f"{y['name']}: {what} differs from the checkpoint's {x['name']}"
    return "content differs"


def _slice(b: TraceBatch, lo: int, hi: int) -> TraceBatch:
    """Rows [lo, hi) of a batch, as a batch (views)."""
    cols = {f.name: getattr(b, f.name)[lo:hi] for f in dataclasses.fields(b)
            if isinstance(getattr(b, f.name), np.ndarray)}
    return dataclasses.replace(b, row=b.row + lo, **cols)


def _source_path(source):
    return None if isinstance(source, (pa.Table, pa.RecordBatchReader)) else \
        os.path.abspath(os.fspath(source))


def replay_checkpointed(owner, source, *, batch_rows, epoch_events, epoch_ns, strict,
                        progress, task_policy, cpu_map, heat_buckets, checkpoint,
                        checkpoint_every, checkpoint_meta, resume, on_batch=None):
    """``Replay.replay`` with checkpoints and/or resuming (see the module docstring);
    ``owner``: the simulator's Replay subsystem."""
    every = checkpoint_every
    if resume:
        pending = getattr(owner, "pending", None)
        if pending is None:
            raise ValueError("replay(resume=True): nothing to resume (load a replay "
                             "checkpoint with Simulator.load first)")
        run, remap = pending.run["run"], pending.run["remap"]
        rec = pending.info["replay"]
        for name, given in (("epoch_events", epoch_events), ("epoch_ns", epoch_ns),
                            ("strict", strict or None), ("task_policy", task_policy),
                            ("cpu_map", cpu_map), ("heat_buckets", heat_buckets)):
            if given is not None and name not in ("epoch_events", "epoch_ns", "strict"):
                raise ValueError(f"replay(resume=True): {name} comes from the checkpoint")
            if given is not None and given != getattr(run, name):
                raise ValueError(f"replay(resume=True): {name}={given!r} differs from the "
                                 f"checkpoint's {getattr(run, name)!r}")
        if source is None:
            source = rec["source"]
            if source is None:
                raise ValueError("the checkpoint's trace was in memory: pass it to replay()")
        fingerprint = trace_fingerprint(source)
        diff = _difference(rec["fingerprint"], fingerprint)
        if diff is not None:
            raise ckpt.CheckpointError(f"checkpoint {pending.path} was taken on another "
                                       f"trace: {diff}")
        if checkpoint is None:                        # keep checkpointing as before
            checkpoint, every = pending.path, every or rec["checkpoint_every"]
        if checkpoint_meta is None:
            checkpoint_meta = pending.info.get("meta")
        start = int(rec["rows"])
        owner.pending = None
    else:
        if source is None:
            raise TypeError("replay() needs a trace (source)")
        run, remap = owner.new_run(epoch_events, epoch_ns, strict, task_policy, cpu_map,
                                   heat_buckets, batch_rows)
        fingerprint = trace_fingerprint(source) if checkpoint else None
        start = 0
    if checkpoint is False:
        checkpoint = None
    if checkpoint is not None and (not isinstance(every, int) or isinstance(every, bool)
                                   or every < 1):
        raise ValueError(f"checkpoint_every must be a positive number of events, not "
                         f"{every!r}")
    if checkpoint is None:
        every = None
    next_at = (start // every + 1) * every if every else None
    info = {"source": _source_path(source), "fingerprint": fingerprint,
            "checkpoint_every": every, "batch_rows": batch_rows}
    seen = 0
    try:
        with owner.batches(source, batch_rows, run.strict) as batches:
            for b in batches:
                seen = b.row + len(b)
                if seen <= start:
                    continue
                lo = max(start - b.row, 0)
                while lo < len(b):
                    hi = len(b) if next_at is None else min(len(b), next_at - b.row)
                    part = b if lo == 0 and hi == len(b) else _slice(b, lo, hi)
                    run.batch(remap(part) if remap else part, on_batch)
                    lo = hi
                    if next_at is not None and b.row + hi == next_at:
                        _write(owner.calls, {"run": run, "remap": remap}, checkpoint,
                               dict(info, rows=next_at), checkpoint_meta)
                        next_at += every
                if progress is not None:
                    progress(seen)
    except BaseException as e:     # streaming semantics (docs/api.md): rows applied stay
        e.rows_replayed = run.rows
        raise
    if seen < start:
        raise ckpt.CheckpointError(f"the trace has {seen} rows, fewer than the position of "
                                   f"the checkpoint ({start})")
    return run.finish()


def _write(sim, run, directory, replay_info, meta):
    graph, arrays, table = ckpt.encode_simulator(sim, run)
    extra = {"replay": replay_info, "meta": meta or {}}
    ckpt.write(directory, graph, arrays, table, kind="replay", extra=extra)
