"""The ``fastnuma`` command line. Errors are one line and a non-zero exit status.

    fastnuma demo [--pages N]
    fastnuma generate SCENARIO --events N [--seed S] -o FILE [--nodes ...] [--pages ...]
    fastnuma info TRACE
    fastnuma replay TRACE [--topology PRESET|FILE] [--numa-balancing 0|1] [--profile ...]
                    [--checkpoint DIR --checkpoint-every N]
    fastnuma replay [TRACE] --resume DIR
    fastnuma convert lackey|perf|csv INPUT -o FILE
    fastnuma --version
"""
import argparse
import os
import sys


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block): ``fastnuma ...: error: ...``."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser():
    from .trace.generate import SCENARIOS
    from ._version import __version__
    parser = _Parser(prog="fastnuma", description="Simulate Linux NUMA memory placement.")
    parser.add_argument("--version", action="version", version=f"fastnuma {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the bundled example and print its counters")
    demo.add_argument("--pages", type=int, default=1 << 16,
                      help="size of the example's array in 4 KiB pages (default 65536)")

    gen = sub.add_parser("generate", help="write a synthetic trace (written whole or not "
                         "at all)", description="Write a synthetic trace of SCENARIO; the "
                         "format comes from the extension (.arrow/.feather: Arrow IPC file, "
                         ".arrows: IPC stream, .parquet). Scenarios are documented in "
                         "fastnuma.trace.generate.")
    gen.add_argument("scenario", choices=tuple(SCENARIOS))
    gen.add_argument("--events", type=int, required=True, help="rows of the trace")
    gen.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    gen.add_argument("-o", "--output", required=True, help="trace file to write")
    gen.add_argument("--format", choices=("file", "stream", "parquet"),
                     help="container, instead of the one the extension names")
    gen.add_argument("--compression", help="IPC: lz4 or zstd (default none); Parquet: "
                     "codec (default zstd)")
    for flag, kind, what in (
            ("--nodes", int, "NUMA nodes (default 4)"),
            ("--cpus-per-node", int, "CPUs per node (default 4)"),
            ("--pages", int, "working set in 4 KiB pages (default 4096)"),
            ("--threads", int, "threads (default: per scenario)"),
            ("--batch-rows", int, "rows per batch written (default 65536)"),
            ("--ns-per-event", int, "ns between two events of one thread (default 1000)"),
            ("--write-fraction", float, "probability that an access is a write"),
            ("--exponent", float, "zipf: the Zipf exponent (default 1.0)"),
            ("--phases", int, "phase: number of phases (default 2)"),
            ("--stride", int, "sequential: bytes between accesses (default 4096)"),
            ("--lag", int, "prodcons: pages the readers trail the writers by")):
        gen.add_argument(flag, type=kind, help=what)
    gen.add_argument("--init", action=argparse.BooleanOptionalAction, default=None,
                     help="the main thread first writes every page (default: per scenario)")
    gen.add_argument("--bare", action="store_true", default=None,
                     help="accesses only, columns addr and cpu only")

    info = sub.add_parser("info", help="summarise a trace (one streaming pass)")
    info.add_argument("trace", help="trace file, directory or glob")
    info.add_argument("--batch-rows", type=int, default=1 << 20,
                      help="rows read per batch (default 1048576)")

    rep = sub.add_parser("replay", help="replay a trace and print what Linux would do",
                         description="Replay TRACE (a file, directory or glob) against a "
                         "simulated machine; print a summary, and with --out write the "
                         "report's tables (Parquet) and summary.json.")
    rep.add_argument("trace", nargs="?", help="trace file, directory or glob")
    rep.add_argument("--topology", help="preset (uniform, two_socket, four_socket, cxl), a "
                     "file of `numactl --hardware` output, or a sysfs node directory "
                     "(default: the trace's suggested machine, else four_socket)")
    rep.add_argument("--numa-balancing", type=int, choices=(0, 1), default=None,
                     help="kernel.numa_balancing (default 0)")
    rep.add_argument("--profile", choices=("mainline", "seed"), default=None,
                     help="the kernel's rules: today's, or the 2012 lazy-migration design")
    rep.add_argument("--thp", choices=("never", "madvise", "always"), default=None,
                     help="transparent_hugepage/enabled (default never)")
    rep.add_argument("--epoch", default=None, help="time-series step: a number of "
                     "events, or a time such as 100ms, 1s, 500us, 2000ns (default 1000000)")
    rep.add_argument("--strict", action="store_true", default=None, help="an access outside every "
                     "mapping is a segfault event (default: map its 2 MiB region)")
    rep.add_argument("--batch-rows", type=int, default=1 << 20,
                     help="rows read per batch (default 1048576)")
    rep.add_argument("--out", help="directory for the report (Parquet tables + summary.json)")
    rep.add_argument("--no-progress", action="store_true", help="no progress bar")
    from .cli_checkpoint import add_arguments as add_checkpoint_arguments
    add_checkpoint_arguments(rep)      # --checkpoint, --checkpoint-every, --resume

    conv = sub.add_parser("convert", help="convert a memory trace to trace format v1",
                          description="Convert Valgrind lackey output (--trace-mem=yes), "
                          "`perf script -F comm,pid,tid,cpu,time,event,addr` output of "
                          "`perf mem record`, or a CSV with named trace columns; the field "
                          "mapping is documented in fastnuma.trace.convert.")
    conv.add_argument("format", choices=("lackey", "perf", "csv"))
    conv.add_argument("input", help="the file to convert")
    conv.add_argument("-o", "--output", required=True, help="trace file to write")
    conv.add_argument("--cpu", type=int, default=0, help="lackey: the CPU of every event")
    conv.add_argument("--instructions", action="store_true",
                      help="lackey: keep instruction fetches (as reads)")
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except BrokenPipeError:                 # `fastnuma demo | head`: the reader went away
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


_PARAMS = ("nodes", "cpus_per_node", "pages", "threads", "batch_rows", "ns_per_event",
           "write_fraction", "exponent", "phases", "stride", "lag", "init", "bare")


def _generate(args):
    from .trace.generate import write_trace
    params = {k: getattr(args, k) for k in _PARAMS if getattr(args, k) is not None}
    rows = write_trace(args.output, args.scenario, args.events, args.seed, format=args.format,
                       compression=args.compression, **params)
    print(f"wrote {args.output}: {rows} rows (scenario {args.scenario}, seed {args.seed})")


def _info(args):
    from .trace.info import trace_info
    if args.batch_rows < 1:
        raise ValueError(f"--batch-rows {args.batch_rows}: expected a positive number")
    print(trace_info(args.trace, batch_rows=args.batch_rows))


_TIME_UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


def parse_epoch(text):
    """--epoch: ("events", n) for a plain number, ("ns", n) for a time with a unit."""
    text = text.strip().lower()
    for unit in sorted(_TIME_UNITS, key=len, reverse=True):
        if text.endswith(unit) and text[:-len(unit)].strip():
            number = text[:-len(unit)].strip()
            try:
                value = round(float(number) * _TIME_UNITS[unit])
            except ValueError:
                break
            if value < 1:
                break
            return "ns", value
    else:
        if text.isdigit() and int(text) > 0:
            return "events", int(text)
    raise ValueError(f"--epoch {text!r}: expected a number of events or a time such as "
                     f"100ms")


def _topology(spec, trace):
    from .topology import Topology
    from .trace.writer import META_TOPOLOGY
    if spec is None:
        import json
        meta = _trace_metadata(trace)
        if META_TOPOLOGY in meta:
            kw = json.loads(meta[META_TOPOLOGY])
            preset = kw.pop("preset", "uniform")
            return getattr(Topology, preset)(**kw), f"{preset} (from the trace)"
        return Topology.four_socket(), "four_socket (default: the trace names none)"
    presets = ("uniform", "two_socket", "four_socket", "cxl")
    if spec in presets:
        return getattr(Topology, spec)(), spec
    if os.path.isdir(spec):
        return Topology.from_sysfs(spec), spec
    if not os.path.exists(spec):
        raise ValueError(f"--topology {spec!r}: not a preset ({', '.join(presets)}) nor a "
                         f"file")
    with open(spec) as f:
        return Topology.from_numactl(f.read()), spec


def _trace_metadata(trace):
    """Schema metadata of the trace's first file ({} when there is none)."""
    from .trace.info import read_schema
    from .trace.reader import trace_files
    schema = read_schema(trace_files(trace)[0])
    return {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()}


def _trace_rows(trace):
    """Rows of the trace when its files say so cheaply (IPC files, Parquet), else None."""
    import pyarrow as pa
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq
    from .trace.reader import trace_files
    total = 0
    for path in trace_files(trace):
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


class _Progress:
    """A one-line progress bar on stderr: events/s and percent of the trace."""

    def __init__(self, total):
        import time
        self.total, self.time, self.t0, self.last = total, time.perf_counter, None, 0.0

    def __call__(self, rows):
        now = self.time()
        if self.t0 is None:
            self.t0 = now
        if now - self.last < 0.2 and rows != self.total:
            return
        self.last = now
        rate = rows / max(now - self.t0, 1e-9)
        if self.total:
            done = rows / self.total
            bar = "#" * int(30 * done)
            line = f"[{bar:<30}] {100 * done:5.1f}%  {rows:,} events  {rate / 1e6:.1f} M/s"
        else:
            line = f"{rows:,} events  {rate / 1e6:.1f} M/s"
        sys.stderr.write("\r" + line)
        sys.stderr.flush()

    def close(self):
        sys.stderr.write("\n")


def _replay(args):
    import fastnuma as fn
    if args.batch_rows < 1:
        raise ValueError(f"--batch-rows {args.batch_rows}: expected a positive number")
    if args.out is not None and os.path.exists(args.out) and not os.path.isdir(args.out):
        raise ValueError(f"--out {args.out!r} exists and is not a directory")
    from . import cli_checkpoint
    if args.resume is not None:                  # machine and settings: the checkpoint's
        sim, named, trace, kw = cli_checkpoint.resume(args)
    else:
        if args.trace is None:
            raise ValueError("replay: give a TRACE (or --resume DIR)")
        trace = args.trace
        kind, step = parse_epoch(args.epoch or "1000000")
        topo, named = _topology(args.topology, trace)
        sim = fn.Simulator(topo, numa_balancing=args.numa_balancing or 0,
                           profile=args.profile or "mainline", thp=args.thp or "never")
        kw = {"epoch_events": step} if kind == "events" else {"epoch_ns": step}
        kw.update(cli_checkpoint.replay_options(args, named), strict=bool(args.strict))
    progress = None
    if not args.no_progress and sys.stderr.isatty():
        progress = _Progress(_trace_rows(trace))
    try:
        report = sim.replay(trace, batch_rows=args.batch_rows, progress=progress, **kw)
    finally:
        if progress is not None:
            progress.close()
    report.topology = f"{named}: {report.topology}"
    print(report.summary())
    if args.out is not None:
        report.write(args.out)
        print(f"report written to {args.out}")


def _convert(args):
    from .trace import convert
    kw = {"cpu": args.cpu, "instructions": args.instructions} if args.format == "lackey" else {}
    n = convert.CONVERTERS[args.format](args.input, args.output, **kw)
    print(f"wrote {args.output}: {n} events (from {args.format} {args.input})")


def _run(args):
    try:
        if args.command == "demo":
            from .demo import run_demo
            if args.pages < 4 or args.pages > 1 << 20:
                raise ValueError(f"--pages {args.pages}: expected 4..{1 << 20}")
            run_demo(args.pages)
        elif args.command == "generate":
            _generate(args)
        elif args.command == "info":
            _info(args)
        elif args.command == "replay":
            _replay(args)
        elif args.command == "convert":
            _convert(args)
    except BrokenPipeError:
        raise
    except (OSError, ValueError, TypeError, MemoryError) as e:
        print(f"fastnuma: error: {e}", file=sys.stderr)
        return 1
    except Exception as e:                  # noqa: BLE001 - pyarrow's own error classes
        if not type(e).__module__.startswith("pyarrow"):
            raise
        print(f"fastnuma: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fastnuma: interrupted", file=sys.stderr)
        return 130
    return 0
