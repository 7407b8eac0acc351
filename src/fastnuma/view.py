"""A report as the figures, the HTML page and the shell formats read it: its tables and
its summary, from a :class:`fastnuma.report.Report` or from a directory it was written to
(``Report.write`` / ``fastnuma replay --out``). Plain data: no kernels, no simulator."""
import json
import os

import pyarrow.parquet as pq


class ReportView:
    """``tables`` ({name: pyarrow Table}), ``summary`` (summary.json's dict), ``label``."""

    def __init__(self, tables, summary, label=""):
        self.tables, self.summary, self.label = tables, summary, label

    @property
    def n_nodes(self):
        return self.tables["nodes"].num_rows

    def column(self, table, name):
        return self.tables[table].column(name).to_pylist()


def view_of(source, label=None):
    """A ReportView of a Report, a report directory, or a ReportView (returned as is)."""
    if isinstance(source, ReportView):
        return source
    if isinstance(source, (str, os.PathLike)):
        return read_report_dir(source, label)
    return ReportView(source.to_tables(), json.loads(json.dumps(source.summary_dict(),
                                                                default=int)), label or "")


def read_report_dir(directory, label=None):
    """Read a report directory: every ``<name>.parquet`` and ``summary.json``."""
    directory = os.fspath(directory)
    path = os.path.join(directory, "summary.json")
    if not os.path.isfile(path):
        raise ValueError(f"{directory!r}: not a report directory (no summary.json; write "
                         f"one with `fastnuma replay TRACE --out DIR`)")
    with open(path) as f:
        try:
            summary = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not JSON ({e})") from None
    tables = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".parquet") and not name.startswith("."):
            tables[name[:-len(".parquet")]] = pq.read_table(os.path.join(directory, name))
    for need in ("counters", "nodes", "access_matrix", "threads", "placement", "epochs"):
        if need not in tables:
            raise ValueError(f"{directory!r}: report table {need}.parquet is missing")
    return ReportView(tables, summary, label or os.path.basename(os.path.normpath(directory)))
