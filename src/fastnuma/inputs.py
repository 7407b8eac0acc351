"""Values users give on the command line or in configuration files, parsed once for every
entry point (the CLI, run configurations, sweeps): epoch lengths, the machine named by a
preset, a file or a trace's metadata, and a trace's row count. Imports nothing heavy, so
that the command line starts fast."""
import os

# Topology's presets, by the names --topology, [machine] preset and grids take
PRESETS = ("uniform", "two_socket", "four_socket", "cxl", "cxl_one_socket", "cxl_two_socket")
TIME_LIMIT_NS = 1 << 62            # constants.TIME_LIMIT_NS (not imported: CLI starts fast)
_TIME_UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


def parse_epoch(text):
    """--epoch: ("events", n) for a plain number, ("ns", n) for a time with a unit."""
    text = text.strip().lower()
    for unit in sorted(_TIME_UNITS, key=len, reverse=True):
        if text.endswith(unit) and text[:-len(unit)].strip():
            number = text[:-len(unit)].strip()
            try:
                value = round(float(number) * _TIME_UNITS[unit])
            except (ValueError, OverflowError):     # nan, inf, 1e400
                break
            if not 1 <= value < TIME_LIMIT_NS:
                break
            return "ns", value
    else:
        if text.isdigit() and 0 < int(text) < TIME_LIMIT_NS:
            return "events", int(text)
    raise ValueError(f"--epoch {text!r}: expected a number of events or a time such as "
                     f"100ms (below 2**62 of either)")


def topology_for(spec, trace):
    """(Topology, its name) as ``--topology SPEC`` picks it: a preset, a sysfs copy (a
    directory), ``numactl --hardware`` output (a file), or, without SPEC, what the trace's
    metadata names (allow-listed presets only), else four_socket."""
    from .topology import Topology
    if spec is None:
        named = topology_from_trace(trace)
        if named is not None:
            return named
        return Topology.four_socket(), "four_socket (default: the trace names none)"
    if spec in PRESETS:
        return getattr(Topology, spec)(), spec
    if os.path.isdir(spec):
        return Topology.from_sysfs(spec), spec
    if not os.path.exists(spec):
        raise ValueError(f"--topology {spec!r}: not a preset ({', '.join(PRESETS)}) nor a "
                         f"file")
    with open(spec) as f:
        return Topology.from_numactl(f.read()), spec


# the presets a trace's metadata may name, and their arguments (all ints): nothing else of
# Topology is reachable from a file
_PRESET_ARGS = {"uniform": ("nodes", "cpus_per_node", "pages_per_node"),
                "two_socket": ("pages_per_node",), "four_socket": ("pages_per_node",),
                "cxl": ("pages_per_node", "cxl_pages")}
_PRESET_MAX = {"nodes": 64, "cpus_per_node": 1 << 12}
PAGES_MAX = 1 << 36                     # 256 TiB of 4 KiB pages per node


def topology_from_trace(trace):
    """(Topology, name) the trace's fastnuma.trace.topology metadata names, or None."""
    from .topology import Topology
    from .trace.writer import META_TOPOLOGY
    meta = trace_metadata(trace)
    if META_TOPOLOGY not in meta:
        return None
    preset, kw = _trace_topology(meta[META_TOPOLOGY], trace)
    return getattr(Topology, preset)(**kw), f"{preset} (from the trace)"


def _trace_topology(text, trace):
    """(preset, keyword arguments) from a trace's fastnuma.trace.topology metadata, checked
    against the allow-list above; ValueError naming the trace otherwise."""
    import json
    where = f"{trace}: metadata fastnuma.trace.topology"
    try:
        kw = json.loads(text)
    except ValueError:
        raise ValueError(f"{where} is not JSON") from None
    if not isinstance(kw, dict):
        raise ValueError(f"{where} is not a JSON object")
    preset = kw.pop("preset", "uniform")
    if preset not in _PRESET_ARGS:
        raise ValueError(f"{where}: unknown preset {str(preset)[:40]!r} (expected one of "
                         f"{', '.join(_PRESET_ARGS)}; or give --topology)")
    for k, v in kw.items():
        if k not in _PRESET_ARGS[preset]:
            raise ValueError(f"{where}: preset {preset} takes no argument {str(k)[:40]!r} "
                             f"(it takes {', '.join(_PRESET_ARGS[preset])})")
        top = _PRESET_MAX.get(k, PAGES_MAX)
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= top:
            raise ValueError(f"{where}: {k} must be an integer in 1..{top}, not "
                             f"{str(v)[:40]!r}")
    return preset, kw


def trace_metadata(trace):
    """Schema metadata of the trace (a pyarrow Table or reader, a URL pyarrow's filesystems
    open, or its first file; {} when there is none), without reading its data."""
    from .trace.remote import is_url
    if hasattr(trace, "schema"):
        schema = trace.schema
    elif is_url(trace):
        from .trace.remote import open_url
        schema = open_url(trace).schema
    else:
        from .trace.info import read_schema
        from .trace.reader import trace_files
        schema = read_schema(trace_files(trace)[0])
    return {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()}


def trace_rows(trace):
    """Rows of the trace when its files say so cheaply (IPC files, Parquet), else None."""
    from .trace.reader import trace_files
    from .trace.remote import is_url
    if is_url(trace):
        return None
    try:
        return _count_rows(trace_files(trace))
    except Exception:                       # noqa: BLE001 - the replay names the bad file
        return None


def _count_rows(files):
    import pyarrow as pa
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq
    total = 0
    for path in files:
        ext = os.path.splitext(path)[1]
        if ext == ".parquet":
            total += pq.ParquetFile(path).metadata.num_rows
        elif ext in (".arrow", ".feather"):
            with pa.memory_map(path) as src:
                r = ipc.open_file(src)
                total += sum(r.get_batch(i).num_rows for i in range(r.num_record_batches))
        else:
            return None
    return total
