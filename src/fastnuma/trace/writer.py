"""Streaming trace writer (trace format v1): an output is written whole or not at all.

``TraceWriter`` writes batches to a temporary file in the destination's directory (a
dot-file ending in ``.tmp``, which trace readers skip) and renames it into place with
``os.replace`` only when the writer is closed without an error. On an exception the
temporary file is removed and an existing file at the destination is left untouched.

Columns. The stored columns are ``columns=`` when given, else those of the first batch
written (at least ``addr`` and ``cpu``), always in the order and with the types of
``schema.COLUMNS``. A later batch that lacks one of them gets it filled with the value a
reader would give the absent column (``op`` 0, ``pid`` 0, ..., ``ts`` the global row
number, ``tid`` the row's ``cpu``), so filling never changes what the trace means. A column
the writer does not store, or a name trace format v1 does not define, is an error (a typo
would otherwise be dropped silently). Integer values of other widths are cast when every
value fits; ``ts`` must not decrease and ``op`` must be a v1 event kind, as readers check.

Schema metadata: ``fastnuma.trace.version`` = ``"1"``; with ``generator=`` (a dict, JSON)
``fastnuma.trace.generator``; with ``topology=`` (a dict, JSON, e.g. the keywords of
``Topology.uniform`` plus ``"preset": "uniform"``) ``fastnuma.trace.topology``; and any
``metadata=`` pairs (str -> str).
"""
import json
import os
import secrets

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from ..errors import TraceError
from .checks import first_above, first_decrease
from .schema import COLUMNS, MAX_OP, REQUIRED, SUFFIXES, VERSION, checked_column

__all__ = ["TraceWriter", "FORMATS", "format_of", "trace_schema", "META_VERSION",
           "META_GENERATOR", "META_TOPOLOGY"]

FORMATS = SUFFIXES              # (the name this module exports)
META_VERSION = "fastnuma.trace.version"
META_GENERATOR = "fastnuma.trace.generator"
META_TOPOLOGY = "fastnuma.trace.topology"
DEFAULT_PARQUET_COMPRESSION = "zstd"


def format_of(path, format=None):
    """The container of ``path``: "file" (Arrow IPC file), "stream" (IPC stream) or
    "parquet"; ``format`` (one of those, or an extension such as ".arrow") wins."""
    if format is not None:
        kind = FORMATS.get(format if format.startswith(".") else "." + format, format)
        if kind not in ("file", "stream", "parquet"):
            raise ValueError(f"unknown trace format {format!r} (expected file, stream, "
                             "parquet or one of .arrow, .feather, .arrows, .parquet)")
        return kind
    ext = os.path.splitext(os.fspath(path))[1]
    if ext not in FORMATS:
        raise ValueError(f"cannot tell the trace format of {os.fspath(path)!r} from its "
                         "extension (expected .arrow, .feather, .arrows or .parquet)")
    return FORMATS[ext]


def trace_schema(columns, metadata=None):
    """The Arrow schema of a v1 trace holding ``columns`` (in canonical order)."""
    fields = [pa.field(name, pa.from_numpy_dtype(COLUMNS[name][0]), nullable=False)
              for name in COLUMNS if name in columns]
    return pa.schema(fields, metadata=metadata)


def _metadata(generator, topology, metadata):
    meta = {META_VERSION: str(VERSION)}
    if generator is not None:
        meta[META_GENERATOR] = json.dumps(generator, sort_keys=True)
    if topology is not None:
        meta[META_TOPOLOGY] = json.dumps(topology, sort_keys=True)
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"metadata must map str to str, got {key!r}: {value!r}")
        meta[key] = value
    return meta


def _check_compression(kind, compression):
    """The codec to use for container ``kind`` (ValueError for one pyarrow lacks)."""
    if compression is None:
        return DEFAULT_PARQUET_COMPRESSION if kind == "parquet" else None
    allowed = (("none", "snappy", "gzip", "brotli", "lz4", "zstd") if kind == "parquet"
               else ("lz4", "zstd"))
    name = str(compression).lower()
    if name not in allowed or (name != "none" and not pa.Codec.is_available(
            "lz4_frame" if name == "lz4" and kind != "parquet" else name)):
        raise ValueError(f"compression {compression!r} is not available for "
                         f"{'Parquet' if kind == 'parquet' else 'Arrow IPC'} (expected one "
                         f"of {', '.join(allowed)})")
    return name


class TraceWriter:
    """Write a v1 trace batch by batch; see the module docstring for the rules.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; its extension gives the format unless ``format`` is given.
    format : {"file", "stream", "parquet"} or an extension, optional
    columns : iterable of str, optional
        Columns to store (``addr`` and ``cpu`` always); default: the first batch's.
    generator, topology : dict, optional
        Stored as JSON in the schema metadata (how the trace was made; a suggested machine).
    metadata : dict of str to str, optional
        Further schema metadata.
    compression : str, optional
        Arrow IPC: None (default, memory-mappable without decoding), "lz4" or "zstd".
        Parquet: default "zstd".

    Use it as a context manager, or call :meth:`close` (commit) / :meth:`abort`.
    """

    def __init__(self, path, format=None, *, columns=None, generator=None, topology=None,
                 metadata=None, compression=None):
        self.path = os.fspath(path)
        self.format = format_of(self.path, format)
        self._meta = _metadata(generator, topology, metadata)
        if columns is not None:
            columns = set(columns) | set(REQUIRED)
            unknown = sorted(columns - set(COLUMNS))
            if unknown:
                raise ValueError(f"trace format v1 has no column {unknown[0]!r}")
        self._columns = columns
        self._compression = _check_compression(self.format, compression)
        self.rows = 0
        self._last_ts = 0
        self._writer = None
        self._tmp = None
        self._done = False
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"no such directory: {directory!r}")
        if os.path.isdir(self.path):
            raise IsADirectoryError(f"is a directory: {self.path!r}")
        self._tmp = self._reserve_tmp(directory)

    def _reserve_tmp(self, directory):
        base = os.path.basename(self.path)
        while True:
            tmp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
            try:                                  # 0o666 & ~umask, as the final file gets
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                return tmp
            except FileExistsError:
                continue
            except OSError as e:                  # name the file asked for, not the temp
                raise OSError(e.errno, f"cannot write {self.path!r}: {e.strerror}") from None

    @property
    def schema(self):
        """The schema being written (None until the columns are known)."""
        return None if self._columns is None else trace_schema(self._columns, self._meta)

    def _open(self):
        self._schema = schema = self.schema
        if self.format == "parquet":
            self._writer = pq.ParquetWriter(self._tmp, schema, compression=self._compression)
        else:
            options = ipc.IpcWriteOptions(compression=self._compression)
            new = ipc.new_file if self.format == "file" else ipc.new_stream
            self._writer = new(self._tmp, schema, options=options)

    def _columns_of(self, data):
        """{name: array-like} of a RecordBatch, Table or mapping."""
        if isinstance(data, (pa.RecordBatch, pa.Table)):
            return {name: data.column(name) for name in data.schema.names}
        if hasattr(data, "items"):
            return dict(data.items())
        raise TypeError("write() takes a pyarrow RecordBatch or Table or a dict of arrays, "
                        f"not {type(data).__name__}")

    def write(self, data):
        """Append the rows of ``data`` (RecordBatch, Table or dict of column arrays)."""
        if self._done:
            raise ValueError(f"trace writer for {self.path!r} is closed")
        given = self._columns_of(data)
        unknown = sorted(set(given) - set(COLUMNS))
        if unknown:
            raise ValueError(f"trace format v1 has no column {unknown[0]!r}")
        if self._columns is None:
            self._columns = set(given) | set(REQUIRED)
        for name in REQUIRED:
            if name not in given:
                raise TraceError("missing required column", path=self.path, column=name)
        extra = sorted(set(given) - self._columns)
        if extra:
            raise ValueError(f"column {extra[0]!r} is not stored by this writer (its columns "
                             "come from the first batch; pass columns= to store it)")
        cols = {name: checked_column(name, given[name], self.path, self.rows) for name in given}
        n = cols["addr"].size
        for name, col in cols.items():
            if col.size != n:
                raise ValueError(f"column {name!r} has {col.size} rows, 'addr' has {n}")
        for name in self._columns - set(cols):          # the reader's value when absent
            if name == "ts":
                cols[name] = np.arange(self.rows, self.rows + n, dtype=np.uint64)
            elif name == "tid":
                cols[name] = cols["cpu"].astype(np.uint32)
            else:
                cols[name] = np.full(n, COLUMNS[name][2], COLUMNS[name][0])
        self._check(cols, n)
        if self._writer is None:
            self._open()
        if n:
            schema = self._schema
            self._writer.write_batch(pa.RecordBatch.from_arrays(
                [pa.array(cols[f.name]) for f in schema], schema=schema))
        self.rows += n
        return n

    def _check(self, cols, n):
        if not n:
            return
        if "ts" in cols:
            ts = cols["ts"]
            k = first_decrease(ts, np.uint64(self._last_ts))
            if k >= 0:
                raise TraceError("ts goes backwards", path=self.path, column="ts",
                                 row=self.rows + k, value=int(ts[k]))
            self._last_ts = int(ts[-1])
        if "op" in cols:
            k = first_above(cols["op"], np.uint8(MAX_OP))
            if k >= 0:
                raise TraceError(f"unknown op (version 1 defines 0..{MAX_OP})", path=self.path,
                                 column="op", row=self.rows + k, value=int(cols["op"][k]))

    def close(self):
        """Finish the file and rename it into place (the commit)."""
        if self._done:
            return
        try:
            if self._columns is None:
                self._columns = set(REQUIRED)
            if self._writer is None:
                self._open()
            self._writer.close()
            self._writer = None
            with open(self._tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self._done = True

    def abort(self):
        """Discard everything written; the destination is left as it was."""
        self._done = True
        writer, self._writer = self._writer, None
        try:
            if writer is not None:
                writer.close()
        except Exception:                               # noqa: BLE001 - discarding anyway
            pass
        finally:
            if self._tmp is not None:
                try:
                    os.unlink(self._tmp)
                except FileNotFoundError:
                    pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False

    def __del__(self):                  # dropped without close(): never leave a temp file
        if not getattr(self, "_done", True):
            self.abort()
