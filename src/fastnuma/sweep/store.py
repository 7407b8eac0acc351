"""The results table of a sweep: one Parquet file, one row per combination.

The file is rewritten whole (a temporary file in the same directory, renamed over the old
one) each time results are flushed, so a reader, a crash or a kill at any moment finds
either the previous table or the new one, never a torn file. Rows of earlier runs are
kept; a combination already there with status "ok" is not run again (resume); a failed
one is run again and its row replaced.
"""
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq

from ..outdir import write_file

META_KEY = b"fastnuma.sweep"
FORMAT_VERSION = 1
FIRST = ("combination", "trace", "status", "error")
#: columns that may be all null still get their type
TYPES = {"error": pa.string(), "estimated_time_ns": pa.float64(),
         "memory_estimate_bytes": pa.int64()}


class ResultStore:
    """Rows by combination key, loaded from ``path`` if it exists; :meth:`flush` writes."""

    def __init__(self, path, grid=None):
        self.path = os.fspath(path)
        self.grid = grid
        self.rows = {}
        self.config_columns = []
        self.dirty = False
        if os.path.exists(self.path):
            self._load()

    def _load(self):
        try:
            table = pq.read_table(self.path)
        except (pa.ArrowInvalid, OSError) as e:
            raise ValueError(f"{self.path}: exists and is not a readable Parquet file "
                             f"({e}); not overwriting it") from None
        meta = table.schema.metadata or {}
        if META_KEY not in meta or "combination" not in table.column_names:
            raise ValueError(f"{self.path}: exists and is not a fastnuma sweep table (no "
                             f"{META_KEY.decode()} metadata); not overwriting it")
        info = json.loads(meta[META_KEY])
        self.config_columns = list(info.get("config_columns", []))
        for row in table.to_pylist():
            self.rows[row["combination"]] = {k: v for k, v in row.items() if v is not None}

    def finished(self):
        """Keys of combinations that ran to the end (status "ok")."""
        return {k for k, r in self.rows.items() if r.get("status") == "ok"}

    def add(self, row, config_columns=()):
        for c in config_columns:
            if c not in self.config_columns:
                self.config_columns.append(c)
        self.rows[row["combination"]] = row
        self.dirty = True

    def table(self):
        """The rows as an Arrow table: identity and configuration columns first, then the
        outcome columns (pages_nodeK in node order); absent cells are null."""
        rows = list(self.rows.values())
        seen = {}
        for r in rows:
            seen.update(dict.fromkeys(r))
        config = [c for c in self.config_columns if c in seen and c not in FIRST]
        rest = [c for c in seen if c not in FIRST and c not in config]
        nodes = sorted((c for c in rest if c.startswith("pages_node")),
                       key=lambda c: int(c[len("pages_node"):]))
        rest = [c for c in rest if not c.startswith("pages_node")] + nodes
        columns = {}
        for name in [c for c in FIRST if c in seen] + config + rest:
            columns[name] = _column([r.get(name) for r in rows], TYPES.get(name))
        meta = {META_KEY: json.dumps({"version": FORMAT_VERSION, "grid": self.grid,
                                      "config_columns": self.config_columns}).encode()}
        return pa.table(columns).replace_schema_metadata(meta)

    def flush(self):
        """Write the table whole (temporary file + rename), with the file mode the
        user's umask gives a new file."""
        if not self.dirty:
            return
        table = self.table()
        write_file(self.path, lambda f: pq.write_table(table, f))
        self.dirty = False


def _column(values, kind=None):
    """An Arrow array of the values; a column mixing kinds (e.g. epoch 1000000 and
    "100ms") becomes text."""
    try:
        return pa.array(values, kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())

