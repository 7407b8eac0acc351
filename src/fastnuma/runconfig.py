"""A what-if run's configuration: machine, kernel knobs, task policy, CPU placement, cost
model and replay settings, as one versioned TOML file or the same Python objects.

    version = 1
    name = "2 sockets, interleaved"
    [machine]            # preset = "two_socket" | numactl = FILE | sysfs = DIR | mlc = FILE
    preset = "two_socket" # | nodes = [{memory = "64GiB", cpus = "0-7"}, ...] + distance
    [kernel]             # every fastnuma.Simulator keyword (SimConfig), Linux names
    numa_balancing = 1
    [policy]
    task = "interleave:all"   # numactl's options: membind:0-1, preferred:1, localalloc...
    [placement]
    cpu_map = "spread"        # keep | spread | pack | modulo | file (+ file = PATH)
    cpunodebind = "0"         # and/or physcpubind = "0-3"
    [cost]                    # fastnuma.costmodel.CostModel fields
    mlc_latency = "skx.txt"
    [replay]
    epoch = "100ms"           # or a number of events; strict = false

Relative paths are relative to the TOML file. docs/run-config.md documents every key.
"""
import hashlib
import os
import re
import sys
from dataclasses import dataclass, field, replace

from .costmodel import CostModel
from .numactl import CpuPlacement
from .inputs import PRESETS

CONFIG_VERSION = 1
SECTIONS = ("machine", "kernel", "policy", "placement", "cost", "replay")
_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
               "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30,
               "gib": 1 << 30, "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40}


def _toml():
    if sys.version_info >= (3, 11):
        import tomllib
        return tomllib
    import tomli                                  # pyproject: tomli on Python 3.10
    return tomli


def parse_size(value, where):
    """Bytes from an int (bytes) or a string such as "64GiB", "512 MiB" (binary units;
    GB = GiB as numactl prints them)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(value))
    if not m or m[2].lower() not in _SIZE_UNITS:
        raise ValueError(f"{where}: {value!r} is not a size (bytes, or e.g. 64GiB, 512MiB)")
    return int(float(m[1]) * _SIZE_UNITS[m[2].lower()])


@dataclass(frozen=True)
class RunConfig:
    """One configuration of a what-if run (see the module docstring)."""
    name: str = None
    machine: dict = field(default_factory=dict)
    kernel: dict = field(default_factory=dict)
    policy: str = "default"
    placement: CpuPlacement = field(default_factory=CpuPlacement)
    cost: CostModel = field(default_factory=CostModel)
    replay: dict = field(default_factory=dict)
    source: str = None

    @classmethod
    def from_toml(cls, path):
        """Read a TOML configuration; errors name the file and the key."""
        path = os.fspath(path)
        with open(path, "rb") as f:
            try:
                data = _toml().load(f)
            except ValueError as e:               # tomllib.TOMLDecodeError
                raise ValueError(f"{path}: {e}") from None
        return cls.from_dict(data, base=os.path.dirname(os.path.abspath(path)), source=path)

    @classmethod
    def from_dict(cls, data, base=None, source=None):
        where = source or "config"
        data = dict(data)
        version = data.pop("version", CONFIG_VERSION)
        if version != CONFIG_VERSION:
            raise ValueError(f"{where}: version = {version!r}; this fastnuma reads version "
                             f"{CONFIG_VERSION}")
        name = data.pop("name", None)
        unknown = sorted(set(data) - set(SECTIONS))
        if unknown:
            raise ValueError(f"{where}: unknown key {unknown[0]!r} (sections: "
                             f"{', '.join(SECTIONS)})")
        for key in SECTIONS:
            if key in data and not isinstance(data[key], dict):
                raise ValueError(f"{where}: [{key}] must be a table")
        fix = (lambda p: p if p is None or base is None or os.path.isabs(p)
               else os.path.join(base, p))
        machine = dict(data.get("machine", {}))
        for key in ("numactl", "sysfs", "mlc"):
            if key in machine:
                machine[key] = fix(machine[key])
        pol = dict(data.get("policy", {}))
        task = pol.pop("task", "default")
        if pol:
            raise ValueError(f"{where}: unknown key policy.{sorted(pol)[0]} (policy.task)")
        pl = dict(data.get("placement", {}))
        try:
            placement = CpuPlacement(mode=pl.pop("cpu_map", "keep"),
                                     cpunodebind=pl.pop("cpunodebind", None),
                                     physcpubind=pl.pop("physcpubind", None),
                                     file=fix(pl.pop("file", None)))
            if pl:
                raise ValueError(f"unknown key placement.{sorted(pl)[0]}")
            cost = dict(data.get("cost", {}))
            for key in ("mlc_latency", "mlc_bandwidth"):
                if key in cost:
                    cost[key] = fix(cost[key])
            for key in ("latency_ns", "bandwidth_gbps"):
                if key in cost:
                    cost[key] = tuple(tuple(r) if isinstance(r, list) else r
                                      for r in cost[key])
            cost = CostModel(**cost)
        except TypeError as e:
            raise ValueError(f"{where}: [cost]: {e}") from None
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        replay_opts = dict(data.get("replay", {}))
        bad = sorted(set(replay_opts) - {"epoch", "strict", "batch_rows"})
        if bad:
            raise ValueError(f"{where}: unknown key replay.{bad[0]} (epoch, strict, "
                             f"batch_rows)")
        kernel = dict(data.get("kernel", {}))
        weights = kernel.get("interleave_weights")
        if isinstance(weights, dict):             # TOML keys are strings: {"0" = 3}
            try:
                kernel["interleave_weights"] = {int(k): v for k, v in weights.items()}
            except ValueError:
                raise ValueError(f"{where}: kernel.interleave_weights: keys are node "
                                 f"ids") from None
        return cls(name=name, machine=machine, kernel=kernel,
                   policy=str(task), placement=placement, cost=cost, replay=replay_opts,
                   source=source)

    def to_dict(self):
        """The configuration as a JSON-/TOML-ready dict (from_dict reads it back)."""
        return {"version": CONFIG_VERSION, "name": self.label(),
                "machine": dict(self.machine), "kernel": dict(self.kernel),
                "policy": {"task": self.policy},
                "placement": {("cpu_map" if k == "mode" else k): v
                              for k, v in self.placement.describe().items()},
                "cost": self.cost.describe(), "replay": dict(self.replay)}

    def label(self):
        """The name, else "<machine> <policy>"."""
        return self.name or f"{self.machine_label()} {self.policy}"

    def machine_label(self):
        """The preset's name, the machine file's name, "nodes" or "machine"."""
        return self.machine.get("preset") or next(
            (os.path.basename(str(self.machine[k])) for k in ("numactl", "sysfs", "mlc")
             if k in self.machine), "nodes" if "nodes" in self.machine else "machine")

    def with_value(self, key, value):
        """A copy with one dotted key set (``policy``, ``kernel.numa_balancing``,
        ``machine.preset``, ``placement.cpu_map``, ``cost.local_ns``...)."""
        d = self.to_dict()
        d.pop("name")
        section, _, leaf = key.partition(".")
        if key == "policy":
            section, leaf = "policy", "task"
        if section not in SECTIONS or not leaf:
            raise ValueError(f"--vary {key!r}: expected policy or SECTION.KEY with SECTION "
                             f"one of {', '.join(SECTIONS)}")
        if section == "machine" and leaf in ("preset", "numactl", "sysfs", "mlc"):
            d["machine"] = {k: v for k, v in d["machine"].items()
                            if k not in ("preset", "numactl", "sysfs", "mlc", "nodes")}
        d[section][leaf] = value
        return replace(RunConfig.from_dict(d), name=f"{key}={value}")

    # ---------------------------------------------------------------- resolving
    def topology(self, trace=None):
        """The machine as a fastnuma.Topology."""
        return machine_topology(self.machine, trace)

    def epoch_kwargs(self):
        from .inputs import parse_epoch
        kind, step = parse_epoch(str(self.replay.get("epoch", "1000000")))
        return {"epoch_events": step} if kind == "events" else {"epoch_ns": step}


def machine_topology(machine, trace=None):
    """[machine] -> Topology: preset (+ its keyword arguments), numactl, sysfs, mlc (+
    node_pages, cpus_per_node), or explicit nodes + distance; nothing: the trace's
    suggested machine, else four_socket."""
    from .topology import Topology
    m = dict(machine)
    kinds = [k for k in ("preset", "numactl", "sysfs", "mlc", "nodes") if k in m]
    if len(kinds) > 1:
        raise ValueError(f"[machine]: give one of preset, numactl, sysfs, mlc, nodes "
                         f"(got {', '.join(kinds)})")
    if not kinds:
        if trace is not None:
            from .inputs import topology_from_trace
            named = topology_from_trace(trace)          # allow-listed presets only
            if named is not None:
                return named[0]
        return Topology.four_socket()
    kind = kinds[0]
    value = m.pop(kind)
    if kind == "preset":
        if value not in PRESETS:
            raise ValueError(f"machine.preset = {value!r}: expected one of "
                             f"{', '.join(PRESETS)}")
        return getattr(Topology, value)(**m)
    if kind == "numactl":
        with open(value) as f:
            return Topology.from_numactl(f.read())
    if kind == "sysfs":
        return Topology.from_sysfs(value)
    if kind == "mlc":
        with open(value) as f:
            kw = {k: m[k] for k in ("node_pages", "cpus_per_node") if k in m}
            return Topology.from_mlc(f.read(), **kw)
    nodes = value
    if not isinstance(nodes, list) or not nodes:
        raise ValueError("machine.nodes: expected a list of {memory, cpus} tables")
    from .numactl import parse_id_list
    pages, cpus = [], []
    for i, node in enumerate(nodes):
        where = f"machine.nodes[{i}]"
        pages.append(parse_size(node.get("memory", 0), f"{where}.memory") // 4096)
        text = str(node.get("cpus", "")).strip()
        cpus.append(parse_id_list(text, range(8192), range(8192), f"{where}.cpus")
                    if text else ())
    return Topology(pages, cpus, m.get("distance"))


def trace_provenance(trace):
    """{path, bytes, fingerprint}: SHA-256 of every file's bytes in order (or, for an
    in-memory table, of its Arrow IPC serialisation), its first 128 bits in hex. SHA-256
    rather than BLAKE2b: CPUs hash it in hardware (SHA-NI), 1.5 GB/s against 0.7 on the
    dev VM, and a long what-if run hashes its whole trace beside the replay."""
    import pyarrow as pa
    h = hashlib.sha256()
    if isinstance(trace, pa.Table):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, trace.schema) as w:
            w.write_table(trace)
        buf = sink.getvalue()
        h.update(buf)
        return {"path": None, "bytes": buf.size, "fingerprint": h.hexdigest()[:32]}
    from .trace.reader import trace_files
    from .trace.remote import is_url, url_chunks
    size = 0
    if is_url(trace):                   # the URL's file, read through pyarrow's filesystem
        for chunk in url_chunks(trace):
            h.update(chunk)
            size += len(chunk)
        return {"path": trace, "bytes": size, "fingerprint": h.hexdigest()[:32]}
    for path in trace_files(trace):
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
                size += len(chunk)
    return {"path": os.path.abspath(os.fspath(trace)), "bytes": size,
            "fingerprint": h.hexdigest()[:32]}
