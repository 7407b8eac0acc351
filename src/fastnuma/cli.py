"""The ``fastnuma`` command line. Errors are one line and a non-zero exit status.

    fastnuma demo [--pages N]
    fastnuma generate SCENARIO --events N [--seed S] -o FILE [--nodes ...] [--pages ...]
    fastnuma info TRACE
    fastnuma replay TRACE [--topology PRESET|FILE] [--numa-balancing 0|1] [--profile ...]
    fastnuma convert lackey|perf|csv INPUT -o FILE
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
    parser = _Parser(prog="fastnuma", description="Simulate Linux NUMA memory placement.")
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
    rep.add_argument("trace", help="trace file, directory or glob")
    rep.add_argument("--topology", help="preset (uniform, two_socket, four_socket, cxl), a "
                     "file of `numactl --hardware` output, or a sysfs node directory "
                     "(default: the trace's suggested machine, else four_socket)")
    rep.add_argument("--numa-balancing", type=int, choices=(0, 1), default=0,
                     help="kernel.numa_balancing (default 0)")
    rep.add_argument("--profile", choices=("mainline", "seed"), default="mainline",
                     help="the kernel's rules: today's, or the 2012 lazy-migration design")
    rep.add_argument("--thp", choices=("never", "madvise", "always"), default="never",
                     help="transparent_hugepage/enabled (default never)")
    rep.add_argument("--epoch", default="1000000", help="time-series step: a number of "
                     "events, or a time such as 100ms, 1s, 500us, 2000ns (default 1000000)")
    rep.add_argument("--strict", action="store_true", help="an access outside every "
                     "mapping is a segfault event (default: map its 2 MiB region)")
    rep.add_argument("--batch-rows", type=int, default=1 << 20,
                     help="rows read per batch (default 1048576)")
    rep.add_argument("--out", help="directory for the report (Parquet tables + summary.json)")
    rep.add_argument("--no-progress", action="store_true", help="no progress bar")

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


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised as an exception so that every ``finally`` (temporary files, staging
    directories) runs before the process exits."""


def _on_sigterm(signum, frame):
    raise _Terminated()


def main(argv=None):
    import signal
    try:
        old = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:                      # not the main thread: leave signals alone
        old = None
    try:
        args = _parser().parse_args(argv)   # imports numpy and pyarrow: Ctrl-C lands here too
        return _run(args)
    except BrokenPipeError:                 # `fastnuma demo | head`: the reader went away
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except KeyboardInterrupt as e:
        print("fastnuma: " + ("terminated" if isinstance(e, _Terminated) else "interrupted"),
              file=sys.stderr)
        return 143 if isinstance(e, _Terminated) else 130
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)


_PARAMS = ("nodes", "cpus_per_node", "pages", "threads", "batch_rows", "ns_per_event",
           "write_fraction", "exponent", "phases", "stride", "lag", "init", "bare")


ROW_BYTES = {"bare": 10, "full": 49}   # uncompressed bytes per row: addr+cpu, all columns


def _check_output(args):
    """generate -o: the extension must agree with --format, and the disk must hold an
    uncompressed IPC trace of --events rows (a typo of three zeros fills a disk)."""
    import shutil
    from .trace.writer import FORMATS
    ext = os.path.splitext(args.output)[1]
    if args.format and ext in FORMATS and FORMATS[ext] != args.format:
        raise ValueError(f"-o {args.output!r} names a {FORMATS[ext]} trace but --format is "
                         f"{args.format}: change one")
    kind = args.format or FORMATS.get(ext)
    if kind in ("file", "stream") and not args.compression and args.events > 0:
        need = args.events * ROW_BYTES["bare" if args.bare else "full"]
        directory = os.path.dirname(os.path.abspath(args.output))
        free = shutil.disk_usage(directory).free if os.path.isdir(directory) else None
        if free is not None and need > free:
            raise ValueError(f"--events {args.events}: the trace needs about "
                             f"{need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free in "
                             f"{directory!r} (use --compression zstd or Parquet)")


def _generate(args):
    from .trace.generate import write_trace
    params = {k: getattr(args, k) for k in _PARAMS if getattr(args, k) is not None}
    _check_output(args)
    rows = write_trace(args.output, args.scenario, args.events, args.seed, format=args.format,
                       compression=args.compression, **params)
    print(f"wrote {args.output}: {rows} rows (scenario {args.scenario}, seed {args.seed})")


def _info(args):
    from .trace.info import trace_info
    if args.batch_rows < 1:
        raise ValueError(f"--batch-rows {args.batch_rows}: expected a positive number")
    print(trace_info(args.trace, batch_rows=args.batch_rows))


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


def _topology(spec, trace):
    from .topology import Topology
    from .trace.writer import META_TOPOLOGY
    if spec is None:
        meta = _trace_metadata(trace)
        if META_TOPOLOGY in meta:
            preset, kw = _trace_topology(meta[META_TOPOLOGY], trace)
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


# the presets a trace's metadata may name, and their arguments (all ints): nothing else of
# Topology is reachable from a file
_PRESET_ARGS = {"uniform": ("nodes", "cpus_per_node", "pages_per_node"),
                "two_socket": ("pages_per_node",), "four_socket": ("pages_per_node",),
                "cxl": ("pages_per_node", "cxl_pages")}
_PRESET_MAX = {"nodes": 64, "cpus_per_node": 1 << 12}
PAGES_MAX = 1 << 36                     # 256 TiB of 4 KiB pages per node


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


def _trace_metadata(trace):
    """Schema metadata of the trace's first file ({} when there is none)."""
    from .trace.info import read_schema
    from .trace.reader import trace_files
    schema = read_schema(trace_files(trace)[0])
    return {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()}


def _trace_rows(trace):
    """Rows of the trace when its files say so cheaply (IPC files, Parquet), else None."""
    from .trace.reader import trace_files
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
    kind, step = parse_epoch(args.epoch)
    if args.out is not None:                # before the replay, not after it
        from .outdir import check_out_dir
        from .report import REPORT_FILES
        from .trace.reader import trace_files
        for path in trace_files(args.trace):
            check_out_dir(args.out, REPORT_FILES, trace=path)
    topo, named = _topology(args.topology, args.trace)
    sim = fn.Simulator(topo, numa_balancing=args.numa_balancing, profile=args.profile,
                       thp=args.thp)
    progress = None
    if not args.no_progress and sys.stderr.isatty():
        progress = _Progress(_trace_rows(args.trace))
    import warnings
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = sim.replay(args.trace, batch_rows=args.batch_rows, strict=args.strict,
                                progress=progress, **({"epoch_events": step} if kind ==
                                                      "events" else {"epoch_ns": step}))
    finally:
        if progress is not None:
            progress.close()
    for w in caught:                        # a cut stream: one line each, on stderr
        print(f"fastnuma: warning: {w.message}", file=sys.stderr)
    report.topology = f"{named}: {report.topology}"
    print(report.summary())
    if args.out is not None:
        report.write(args.out)
        print(f"report written to {args.out}")


def _convert(args):
    from .trace import convert
    if not 0 <= args.cpu < 1 << 16:
        raise ValueError(f"--cpu {args.cpu}: expected 0..65535 (the trace's cpu is uint16)")
    kw = {"cpu": args.cpu, "instructions": args.instructions} if args.format == "lackey" else {}
    stats = {}
    if args.format == "lackey":
        kw["stats"] = stats
    n = convert.CONVERTERS[args.format](args.input, args.output, **kw)
    print(f"wrote {args.output}: {n} events (from {args.format} {args.input})")
    if stats.get("skipped"):
        print(f"fastnuma: warning: {args.input}: skipped {stats['skipped']} malformed "
              f"line{'s' if stats['skipped'] != 1 else ''} (first: line "
              f"{stats['first_skipped']})", file=sys.stderr)


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
    return 0
