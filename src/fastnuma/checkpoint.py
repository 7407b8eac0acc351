"""Checkpoints: the whole simulated machine in a directory, written whole or not at all
(docs/checkpoint.md).

Layout of a checkpoint directory ``DIR``::

    DIR/CURRENT              {"snapshot": "snap-000003", "manifest_sha256": "..."}
    DIR/snap-000003/manifest.json     versions, the object graph (state_codec), the
                                      arrays' SHA-256 checksums, replay position
    DIR/snap-000003/arrays.npz        every array, one uncompressed .npy member each
                                      (``numpy.load`` opens it)

A snapshot is written under a temporary name, flushed to disk (fsync), renamed, and only
then named by ``CURRENT`` (replaced atomically); older snapshots are removed after that.
A process killed at any point leaves ``CURRENT`` naming a complete snapshot (or no
``CURRENT`` at all before the first one). Loading checks the manifest against ``CURRENT``'s
checksum, the versions, and every array against its checksum.

The machine is saved generically (state_codec.py): every attribute of ``Machine``, the
kernels' ``SimState`` arrays, processes, VMAs, policies, and for a replay checkpoint the
replay's own state (time base, epoch clocks, the report builder's epochs, faults and
failed calls), so new tables are included without a change here.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import struct
import tempfile
import zipfile

import numpy as np

from ._version import __version__
from .state_codec import Decoder, Encoder, StateError, array_labels

FORMAT = "fastnuma-checkpoint"
FORMAT_VERSION = 1
_CURRENT = "CURRENT"
_MANIFEST = "manifest.json"
_ARRAYS = "arrays.npz"
_CHUNK = 64 << 20                 # bytes hashed and written at a time


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: a one-line reason naming the directory."""


# --------------------------------------------------------------------- simulator state
def _externals(sim) -> dict:
    """The simulator's subsystem objects (not state: rebuilt by its constructor), by name."""
    m = sim.machine
    state_ids = {id(v) for v in vars(m).values()} | {id(m)}
    out = {"$sim": sim}
    for name, value in vars(sim).items():
        mod = type(value).__module__
        if id(value) not in state_ids and mod.startswith("fastnuma."):
            out[name] = value
    return out


def _replay_part(sim):
    """The Replay subsystem (replay.py), which holds a pending replay after a load."""
    from .replay import Replay
    return next(v for v in vars(sim).values() if isinstance(v, Replay))


def pending(sim):
    """The replay ``sim`` was loaded in the middle of (checkpoint_replay.Pending), or None."""
    return getattr(_replay_part(sim), "pending", None)


def encode_simulator(sim, run=None) -> tuple[dict, list, list]:
    """(graph, arrays, array table) of ``sim``'s machine and, if given, a replay in
    progress (``run``; default: the one pending after a load)."""
    if run is None:
        pending = getattr(_replay_part(sim), "pending", None)
        run = pending.run if pending is not None else None
    m = sim.machine
    enc = Encoder(externals=_externals(sim), roots=(m,))
    graph = {"topology": enc.encode(m.topology, "topology"),
             "config": enc.encode(m.config, "config"),
             "machine": enc.encode(dict(vars(m)), "machine")}
    if run is not None:
        graph["replay"] = enc.encode(run, "replay")
    return graph, enc.arrays, enc.array_table()


def restore_simulator(sim, graph: dict, arrays: list, table: list):
    """Make ``sim`` (new, or a bare ``Simulator.__new__``) the saved machine; returns the
    saved replay in progress or None."""
    dec = Decoder(arrays, table)
    topology = dec.decode(graph["topology"])
    config = dec.decode(graph["config"])
    knobs = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    type(sim).__init__(sim, topology, **knobs)
    m = sim.machine
    dec.bind_root(0, m)
    dec.externals = _externals(sim)
    fresh = dict(vars(m))
    state = dec.decode(graph["machine"])
    vars(m).clear()
    vars(m).update(state)
    # the facade and the subsystems refer to some of the machine's objects directly
    # (sim.pt, sim.procs, ...): point them at the restored ones
    names = {id(v): k for k, v in fresh.items()}
    for obj in [sim] + [v for k, v in dec.externals.items() if k != "$sim"]:
        for attr, value in list(vars(obj).items()):
            k = names.get(id(value))
            if k is not None and k in state:
                setattr(obj, attr, state[k])
    for proc in m.procs.values():      # the kernels' VMA views are caches: rebuilt (a state
        proc.vmas.changed()            # saved before VM_READ/WRITE/EXEC existed lacks them)
    return dec.decode(graph["replay"]) if "replay" in graph else None


# --------------------------------------------------------------------- files
def _mode(perm: int) -> int:
    """``perm`` as the user's umask allows."""
    mask = os.umask(0)
    os.umask(mask)
    return perm & ~mask


def _write_member(zf: zipfile.ZipFile, name: str, arr: np.ndarray) -> str:
    """``arr`` as the .npy member ``name`` of an uncompressed zip (an .npz); returns the
    member's SHA-256, computed while writing (one pass over the array, no copy)."""
    arr = np.ascontiguousarray(arr)
    head = io.BytesIO()
    np.lib.format.write_array_header_2_0(head, np.lib.format.header_data_from_array_1_0(arr))
    h = hashlib.sha256(head.getvalue())
    flat = arr.reshape(-1).view(np.uint8) if arr.size else np.zeros(0, np.uint8)
    with zf.open(name, "w", force_zip64=True) as f:
        f.write(head.getvalue())
        for k in range(0, flat.size, _CHUNK):
            part = flat[k:k + _CHUNK]
            h.update(part)
            f.write(part)
    return h.hexdigest()


def _read_member(raw, zf: zipfile.ZipFile, where: str, name: str, sha: str) -> np.ndarray:
    """The array of .npy member ``name``, read in place from the file (stored members are
    contiguous: no copy through zipfile), after checking it against ``sha``."""
    try:
        zi = zf.getinfo(name)
        if zi.compress_type != zipfile.ZIP_STORED:
            raise ValueError("compressed member")
        raw.seek(zi.header_offset)
        local = raw.read(30)                     # the local file header
        if local[:4] != b"PK\x03\x04":
            raise ValueError("bad local header")
        n_name, n_extra = struct.unpack("<HH", local[26:30])
        start = zi.header_offset + 30 + n_name + n_extra
        raw.seek(start)
        version = np.lib.format.read_magic(raw)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read_header(raw)
        header_len = raw.tell() - start
        raw.seek(start)
        h = hashlib.sha256(raw.read(header_len))
        count = int(np.prod(shape, dtype=np.int64))
        flat = np.empty(count * dtype.itemsize, np.uint8)
        got = raw.readinto(flat)
    except (OSError, ValueError, KeyError, struct.error) as e:
        raise CheckpointError(f"checkpoint {where}: {name} is unreadable ({e})") from None
    for k in range(0, flat.size, _CHUNK):
        h.update(flat[k:k + _CHUNK])
    if got != flat.size or header_len + got != zi.file_size or h.hexdigest() != sha:
        raise CheckpointError(f"checkpoint {where}: {name} does not match its checksum "
                              f"(corrupt or truncated)")
    arr = flat.view(dtype)
    return arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _snapshots(directory: str) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.startswith("snap-"))


def write(directory, graph: dict, arrays: list, table: list, *, kind: str,
          extra: dict | None = None, fsync: bool = True) -> str:
    """Write a snapshot into ``directory`` (created if needed) and make it the current
    one; returns its path. Arrays go into arrays.npz; views are recorded, not stored."""
    directory = os.fspath(directory)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise CheckpointError(f"checkpoint {directory}: exists and is not a directory")
    os.makedirs(directory, exist_ok=True)
    names = _snapshots(directory)
    number = int(names[-1].split("-")[1]) + 1 if names else 1
    tmp = tempfile.mkdtemp(prefix=".tmp-snap-", dir=directory)
    try:
        os.chmod(tmp, _mode(0o777))
        files = []
        paths = array_labels(graph, len(arrays))
        # one uncompressed .npz for all arrays: one file to flush, not one per array
        with open(os.path.join(tmp, _ARRAYS), "wb") as raw:
            with zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
                for j, (arr, entry) in enumerate(zip(arrays, table)):
                    if not entry.get("stored"):
                        files.append(dict(entry))
                        continue
                    name = f"{j:04d}-{paths[j]}.npy"
                    sha = _write_member(zf, name, arr)
                    files.append({"stored": True, "member": name, "sha256": sha,
                                  "dtype": np.lib.format.dtype_to_descr(arr.dtype),
                                  "shape": list(arr.shape), "bytes": int(arr.nbytes)})
            if fsync:
                raw.flush()
                os.fsync(raw.fileno())
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION,
                    "fastnuma_version": __version__, "kind": kind, **(extra or {}),
                    "arrays": files, "graph": graph}
        text = json.dumps(manifest, separators=(",", ":")).encode()
        with open(os.path.join(tmp, _MANIFEST), "wb") as f:
            f.write(text)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        if fsync:
            _fsync_dir(tmp)
        snap = f"snap-{number:06d}"
        os.rename(tmp, os.path.join(directory, snap))
        tmp = None
        current = json.dumps({"snapshot": snap,
                              "manifest_sha256": hashlib.sha256(text).hexdigest()}).encode()
        fd, cur_tmp = tempfile.mkstemp(prefix=".tmp-current-", dir=directory)
        with os.fdopen(fd, "wb") as f:
            f.write(current)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(cur_tmp, _mode(0o666))
        os.replace(cur_tmp, os.path.join(directory, _CURRENT))
        if fsync:
            _fsync_dir(directory)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    for name in os.listdir(directory):          # older snapshots, a dead writer's leftovers
        if name != snap and (name.startswith("snap-") or name.startswith(".tmp-")):
            full = os.path.join(directory, name)
            shutil.rmtree(full, ignore_errors=True) if os.path.isdir(full) else os.unlink(full)
    return os.path.join(directory, snap)


def read_manifest(directory) -> dict:
    """The manifest of the current snapshot, checked (format, version, checksum)."""
    directory = os.fspath(directory)
    try:
        with open(os.path.join(directory, _CURRENT), "rb") as f:
            current = json.loads(f.read())
        snap = current["snapshot"]
        with open(os.path.join(directory, snap, _MANIFEST), "rb") as f:
            text = f.read()
    except FileNotFoundError as e:
        what = "no checkpoint" if not os.path.isdir(directory) else "not a checkpoint " \
            "(no complete snapshot)" if not os.path.exists(os.path.join(directory, _CURRENT)) \
            else f"{os.path.basename(e.filename)} is missing"
        raise CheckpointError(f"checkpoint {directory}: {what}") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {directory}: unreadable CURRENT ({e})") from None
    if hashlib.sha256(text).hexdigest() != current.get("manifest_sha256"):
        raise CheckpointError(f"checkpoint {directory}: {snap}/{_MANIFEST} does not match "
                              f"its checksum (corrupt)")
    manifest = json.loads(text)
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {directory}: format {manifest.get('format')} "
                              f"version {manifest.get('format_version')}, this fastnuma "
                              f"reads {FORMAT} version {FORMAT_VERSION}")
    if manifest.get("fastnuma_version") != __version__:
        raise CheckpointError(f"checkpoint {directory} was written by fastnuma "
                              f"{manifest.get('fastnuma_version')}; this is fastnuma "
                              f"{__version__}: resume it with the version that wrote it")
    manifest["_snapshot"] = os.path.join(directory, snap)
    return manifest


def read(directory) -> tuple[dict, list, list]:
    """(manifest, arrays, array table) of the current snapshot, every checksum checked."""
    manifest = read_manifest(directory)
    where = os.path.join(os.fspath(directory), os.path.basename(manifest["_snapshot"]))
    arrays, table = [], []
    try:
        with open(os.path.join(manifest["_snapshot"], _ARRAYS), "rb") as raw, \
                zipfile.ZipFile(raw) as zf:
            for entry in manifest["arrays"]:
                if entry.get("stored"):
                    arrays.append(_read_member(raw, zf, where, entry["member"],
                                               entry["sha256"]))
                    table.append({"stored": True})
                else:
                    arrays.append(None)
                    table.append(entry)
    except (OSError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"checkpoint {where}: {_ARRAYS} is unreadable ({e})") from None
    return manifest, arrays, table


def info(directory) -> dict:
    """What a checkpoint holds, without loading it: versions, kind, and for a replay the
    position, trace and settings (the manifest minus the state)."""
    manifest = read_manifest(directory)
    return {k: v for k, v in manifest.items() if k not in ("graph", "arrays", "_snapshot")}


def save(sim, directory, *, fsync: bool = True) -> str:
    """``Simulator.save(path)``: the whole machine (and a replay loaded from a checkpoint
    and not resumed yet) into directory ``path``, written whole or not at all; returns
    the snapshot's path. ``fsync=False`` skips flushing to disk (a test's speed)."""
    pending = getattr(_replay_part(sim), "pending", None)
    kind, extra = ("replay", pending.info) if pending is not None else ("simulator", {})
    try:
        graph, arrays, table = encode_simulator(sim)
        return write(directory, graph, arrays, table, kind=kind, extra=extra, fsync=fsync)
    except StateError as e:
        raise CheckpointError(f"checkpoint {directory}: {e}") from None


def load(cls, directory):
    """``Simulator.load(path)``: the simulator saved in ``path`` (by ``save`` or a
    checkpointed replay); a replay checkpoint leaves its replay pending
    (``replay(resume=True)`` continues it). CheckpointError for another version, a
    corrupt or truncated checkpoint."""
    manifest, arrays, table = read(directory)
    sim = cls.__new__(cls)
    try:
        run = restore_simulator(sim, manifest["graph"], arrays, table)
    except (StateError, KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(f"checkpoint {directory}: cannot be restored by this "
                              f"fastnuma ({type(e).__name__}: {e})") from None
    if run is not None:
        from .checkpoint_replay import Pending
        extra = {k: v for k, v in manifest.items()
                 if k not in ("graph", "arrays", "_snapshot")}
        _replay_part(sim).pending = Pending(run, extra, os.fspath(directory))
    return sim


def reduce_simulator(sim):
    """``Simulator.__reduce__``: pickled as the graph and arrays of a checkpoint (and a
    pending replay, if any), so that Dask can move a simulator between processes."""
    graph, arrays, table = encode_simulator(sim)
    pending = getattr(_replay_part(sim), "pending", None)
    state = {"fastnuma_version": __version__, "format_version": FORMAT_VERSION,
             "graph": graph, "arrays": arrays, "table": table,
             "pending": None if pending is None else (pending.info, pending.path)}
    return unpickle_simulator, (type(sim), state)


def unpickle_simulator(cls, state: dict):
    """The simulator :func:`reduce_simulator` pickled."""
    if (state.get("fastnuma_version"), state.get("format_version")) != (__version__,
                                                                       FORMAT_VERSION):
        raise CheckpointError(f"a Simulator pickled by fastnuma "
                              f"{state.get('fastnuma_version')} cannot be unpickled by "
                              f"fastnuma {__version__}")
    sim = cls.__new__(cls)
    run = restore_simulator(sim, state["graph"], state["arrays"], state["table"])
    if run is not None and state["pending"] is not None:
        from .checkpoint_replay import Pending
        _replay_part(sim).pending = Pending(run, *state["pending"])
    return sim
