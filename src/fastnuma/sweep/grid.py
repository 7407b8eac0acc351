"""Grid files of ``fastnuma sweep``: traces x axes, minus exclusions (docs/sweep.md).

```toml
traces = ["traces/zipf_4node.parquet"]     # paths (relative to this file), globs, URLs
[axes]                                      # one list of values per run-configuration key
topology = ["two_socket", "four_socket"]
numa_balancing = [0, 1]
[fixed]                                     # optional: the same value in every combination
epoch = "100ms"
[[exclude]]                                 # optional: combinations matching every key go
topology = "two_socket"
numa_balancing = 1                          # a list here matches any of its values
```

Expansion is the Cartesian product in file order (traces outermost, then the axes as
written, the last axis varying fastest), so a grid always expands to the same list.
"""
import hashlib
import itertools
import json
import os
from dataclasses import dataclass, field

from .run import check_params

GRID_KEYS = ("traces", "axes", "fixed", "exclude")


@dataclass(frozen=True)
class Grid:
    """A parsed grid file: ``traces`` (resolved), ``axes`` {key: [values]}, ``fixed``
    {key: value}, ``exclude`` [{key: [values]}], ``path`` (the file)."""
    traces: list
    axes: dict
    fixed: dict = field(default_factory=dict)
    exclude: list = field(default_factory=list)
    path: str = None

    def combinations(self):
        """Every (trace, params) of the grid not excluded, in expansion order."""
        names = list(self.axes)
        out = []
        for trace in self.traces:
            for values in itertools.product(*(self.axes[k] for k in names)):
                params = {**self.fixed, **dict(zip(names, values))}
                if not any(_matches(ex, trace, params) for ex in self.exclude):
                    out.append((trace, params))
        return out


def _matches(exclusion, trace, params):
    return all((trace if k == "trace" else params.get(k)) in values
               for k, values in exclusion.items())


def combination_key(trace, params):
    """The identity of a combination in the results table (resume): a hash of the trace
    and its parameters, independent of their order."""
    text = json.dumps({"trace": trace, "params": params}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def is_url(path):
    return "://" in str(path)


def load_grid(path):
    """Read and check a grid file; errors are one-line ValueErrors naming the file and
    the key (nothing is run or written before the whole grid checks out)."""
    try:
        import tomllib
    except ImportError:                       # Python 3.10: the same parser, packaged
        import tomli as tomllib
    where = os.fspath(path)
    try:
        with open(where, "rb") as f:
            doc = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{where}: not a TOML file: {e}") from None
    return parse_grid(doc, where)


def parse_grid(doc, where="<grid>"):
    """A :class:`Grid` from a dict shaped like the grid file (``where`` names it in
    errors; relative trace and topology paths are taken from its directory)."""
    base = os.path.dirname(os.path.abspath(where)) if where != "<grid>" else os.getcwd()
    unknown = sorted(set(doc) - set(GRID_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown top-level key {unknown[0]!r} (expected "
                         f"{', '.join(GRID_KEYS)})")
    traces = doc.get("traces")
    if isinstance(traces, str):
        traces = [traces]
    if not traces or not isinstance(traces, list) or not all(isinstance(t, str) for t in traces):
        raise ValueError(f"{where}: traces: expected a non-empty list of paths or URLs")
    traces = [t if is_url(t) else os.path.normpath(os.path.join(base, t)) for t in traces]
    if len(set(traces)) != len(traces):
        raise ValueError(f"{where}: traces: a trace is named twice")
    axes = doc.get("axes", {})
    fixed = doc.get("fixed", {})
    for name, table in (("axes", axes), ("fixed", fixed)):
        if not isinstance(table, dict):
            raise ValueError(f"{where}: [{name}] must be a table")
    for key, values in axes.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"{where}: axes.{key}: expected a non-empty list of values")
        if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
            raise ValueError(f"{where}: axes.{key}: a value is listed twice")
        if key in fixed:
            raise ValueError(f"{where}: {key!r} is both an axis and fixed")
    axes = {k: [_resolve(k, v, base) for v in vs] for k, vs in axes.items()}
    fixed = {k: _resolve(k, v, base) for k, v in fixed.items()}
    exclude = _exclusions(doc.get("exclude", []), axes, traces, where)
    # every value is checked once, alone, so a typo is reported before anything runs
    for key, values in axes.items():
        for i, v in enumerate(values):
            _check(where, f"axes.{key}[{i}]", {**fixed, key: v})
    _check(where, "fixed", fixed)
    return Grid(traces=traces, axes=axes, fixed=fixed, exclude=exclude, path=where)


def _check(where, what, params):
    try:
        check_params(params)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{where}: {what}: {e}") from None


#: keys whose value may name a file (a machine, an MLC output, a CPU map), and the cost
#: table's file fields
FILE_KEYS = ("topology", "mlc", "mlc_bandwidth", "cpu_map", "mlc_latency")


def _resolve(key, value, base):
    """A file named relatively (machine, MLC output, CPU map) is taken from the grid
    file's directory."""
    if key in FILE_KEYS and isinstance(value, str) and not is_url(value) and \
            value not in ("keep", "spread", "pack", "modulo") and os.path.exists(os.path.join(base, value)):
        return os.path.normpath(os.path.join(base, value))
    if isinstance(value, dict):               # TOML keys are strings: {0 = 1} -> {0: 1}
        return {int(k) if str(k).isdigit() else k: _resolve(k, v, base)
                for k, v in value.items()}
    return value


def _exclusions(exclude, axes, traces, where):
    if isinstance(exclude, dict):
        exclude = [exclude]
    if not isinstance(exclude, list):
        raise ValueError(f"{where}: exclude: expected a list of tables ([[exclude]])")
    out = []
    for i, ex in enumerate(exclude):
        if not isinstance(ex, dict) or not ex:
            raise ValueError(f"{where}: exclude[{i}]: expected a non-empty table")
        rule = {}
        for key, value in ex.items():
            values = value if isinstance(value, list) else [value]
            if key == "trace":
                base = os.path.dirname(os.path.abspath(where)) if where != "<grid>" \
                    else os.getcwd()
                values = [v if is_url(v) else os.path.normpath(os.path.join(base, v))
                          for v in values]
                known = traces
            elif key in axes:
                values = [_resolve(key, v, os.path.dirname(os.path.abspath(where)))
                          for v in values]
                known = axes[key]
            else:
                raise ValueError(f"{where}: exclude[{i}].{key}: not an axis (axes: "
                                 f"{', '.join(axes) or 'none'}, or trace)")
            for v in values:
                if v not in known:
                    raise ValueError(f"{where}: exclude[{i}].{key} = {v!r}: not one of "
                                     f"the values {known}")
            rule[key] = values
        out.append(rule)
    return out
