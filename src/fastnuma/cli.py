"""The ``fastnuma`` command line. Errors are one line and a non-zero exit status.

    fastnuma demo [--pages N]
    fastnuma generate SCENARIO --events N [--seed S] -o FILE [--nodes ...] [--pages ...]
    fastnuma info TRACE | --topology PRESET|FILE
    fastnuma replay TRACE [--topology PRESET|FILE] [--numa-balancing 0-3] [--demotion] ...
                    [--checkpoint DIR --checkpoint-every N]
    fastnuma replay [TRACE] --resume DIR
    fastnuma convert lackey|perf|csv INPUT -o FILE [--allow-empty] [--ns-per-event N]
    fastnuma compare TRACE... -c A.toml -c B.toml | --vary KEY=V1,V2 [-o T] [--html F]
    fastnuma plot REPORT_DIR -o DIR [--html [FILE]]
    fastnuma --version
    fastnuma sweep GRID.toml -o RESULTS.parquet [--scheduler tcp://HOST:PORT] [--html F]
"""
import argparse
import os
import sys


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block): ``fastnuma ...: error: ...``."""

    def error(self, message):
        where = self.prog.partition(" ")[2]          # the subcommand, if any
        self.exit(2, f"fastnuma: error: {where + ': ' if where else ''}{message}\n")


def _parser():
    from .trace.generate import SCENARIOS
    parser = _Parser(prog="fastnuma", description="Simulate Linux NUMA memory placement.")
    parser.add_argument("--version", action="version", version=_version())
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
            ("--phases", int, "phase, hotshift: number of phases (default 2, 4)"),
            ("--stride", int, "sequential: bytes between accesses (default 4096)"),
            ("--lag", int, "prodcons: pages the readers trail the writers by")):
        gen.add_argument(flag, type=kind, help=what)
    gen.add_argument("--init", action=argparse.BooleanOptionalAction, default=None,
                     help="the main thread first writes every page (default: per scenario)")
    gen.add_argument("--bare", action="store_true", default=None,
                     help="accesses only, columns addr and cpu only")

    info = sub.add_parser("info", help="summarise a trace (one streaming pass), or a "
                          "machine's memory tiers and watermarks (--topology)")
    info.add_argument("trace", nargs="?", help="trace file, directory or glob")
    info.add_argument("--topology", help="print this machine instead: a preset, a "
                      "`numactl --hardware` file or a sysfs node directory")
    info.add_argument("--batch-rows", type=int, default=1 << 20,
                      help="rows read per batch (default 1048576)")

    rep = sub.add_parser("replay", help="replay a trace and print what Linux would do",
                         description="Replay TRACE (a file, directory or glob) against a "
                         "simulated machine; print a summary, and with --out write the "
                         "report's tables (Parquet) and summary.json.")
    rep.add_argument("trace", nargs="?", help="trace file, directory or glob")
    rep.add_argument("--topology", help="preset (uniform, two_socket, four_socket, cxl, "
                     "cxl_one_socket, cxl_two_socket), a "
                     "file of `numactl --hardware` output, or a sysfs node directory "
                     "(default: the trace's suggested machine, else four_socket)")
    rep.add_argument("--numa-balancing", type=int, choices=(0, 1, 2, 3), default=None,
                     help="kernel.numa_balancing (default 0; 2, 3: memory tiering)")
    rep.add_argument("--demotion", action="store_true", default=None,
                     help="/sys/kernel/mm/numa/demotion_enabled: reclaim demotes to the "
                     "next memory tier (docs/tiering.md)")
    rep.add_argument("--profile", choices=("mainline", "seed"), default=None,
                     help="the kernel's rules: today's, or the 2012 lazy-migration design")
    rep.add_argument("--thp", choices=("never", "madvise", "always"), default=None,
                     help="transparent_hugepage/enabled (default never)")
    rep.add_argument("--epoch", default=None, help="time-series step: a number of "
                     "events, or a time such as 100ms, 1s, 500us, 2000ns (default 1000000)")
    rep.add_argument("--strict", action="store_true", help="an access outside every "
                     "mapping is a segfault event (default: map its 2 MiB region)")
    rep.add_argument("--batch-rows", type=int, default=1 << 20,
                     help="rows read per batch (default 1048576)")
    rep.add_argument("--out", help="directory for the report (Parquet tables + summary.json)")
    rep.add_argument("--no-progress", "--quiet", "-q", dest="quiet", action="store_true",
                     help="no progress (bar on a terminal, else a line every 5 s)")
    rep.add_argument("--format", choices=("text", "json", "vmstat"), default="text",
                     help="stdout: the summary (text), summary.json's content (json), or "
                     "/proc/vmstat lines then numastat -n per node (vmstat)")
    rep.add_argument("--html", metavar="FILE", help="also write a self-contained HTML "
                     "report (figures need fastnuma[plot])")
    rep.add_argument("--heat-buckets", type=int, default=64, metavar="N",
                     help="placement heatmap: address ranges per process recorded at "
                     "each epoch (default 64; 0: none)")
    from .cli_whatif import add_compare_parser, add_what_if_options
    add_what_if_options(rep)            # -c FILE, numactl's flags, CPU map, cost model
    from .cli_checkpoint import add_arguments as add_checkpoint_arguments
    add_checkpoint_arguments(rep)       # --checkpoint, --checkpoint-every, --resume

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
    add_compare_parser(sub)
    conv.add_argument("--ns-per-event", type=int, default=1,
                      help="lackey: simulated ns between two accesses (lackey has no clock; "
                      "default 1)")
    conv.add_argument("--allow-empty", action="store_true", help="write the trace and exit "
                      "0 even when the input had no records that could be read")

    plot = sub.add_parser("plot", help="draw a report's figures (needs fastnuma[plot])",
                          description="Draw the figures of REPORT_DIR (written by `fastnuma "
                          "replay --out`) as PNG and SVG files into DIR; figure kinds are "
                          "documented in docs/report.md.")
    plot.add_argument("report", help="report directory")
    plot.add_argument("-o", "--output", help="directory for the figures")
    plot.add_argument("--kinds", help="comma-separated subset of: timeline, pages, "
                      "balancing, matrix, heat, threads (default: all the report has)")
    plot.add_argument("--formats", default="png,svg", help="image formats (default png,svg)")
    plot.add_argument("--html", nargs="?", const="", metavar="FILE", help="also write the "
                      "HTML report (default FILE: DIR/report.html)")
    _add_sweep(sub)
    return parser


def _add_sweep(sub):
    """`fastnuma sweep` (issue 15; the work is in fastnuma.sweep, Dask is optional)."""
    sw = sub.add_parser("sweep", help="replay a grid of configurations on Dask",
                        description="Replay every combination of GRID (a TOML grid file, "
                        "docs/sweep.md) on Dask and write one row per combination to "
                        "OUTPUT (Parquet, rewritten whole as results arrive); combinations "
                        "already finished in OUTPUT are skipped.")
    sw.add_argument("grid", help="grid file (.toml)")
    sw.add_argument("-o", "--output", required=True, help="results table (.parquet)")
    sw.add_argument("--scheduler", help="address of a running Dask scheduler "
                    "(tcp://HOST:PORT; default: $DASK_SCHEDULER_ADDRESS, else a local "
                    "cluster in this process)")
    sw.add_argument("--workers", type=int, help="local cluster: worker processes "
                    "(default: the CPUs available)")
    sw.add_argument("--memory-limit", type=int, help="local cluster: bytes per worker "
                    "(default: the machine's memory divided among the workers)")
    sw.add_argument("--log-interval", type=float, default=10.0, help="seconds between "
                    "progress lines when stderr is not a terminal (default 10)")
    sw.add_argument("--no-progress", action="store_true", help="no progress bar or lines")
    sw.add_argument("--html", metavar="FILE", help="also write an HTML page of the results "
                    "table: per trace, the combinations ranked by estimated time, figures")


def _sweep(args):
    from .sweep.cli import run_sweep_command
    return run_sweep_command(args)


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
        parser = _parser()
        args = parser.parse_args(argv)      # imports numpy and pyarrow: Ctrl-C lands here too
        if args.command == "info" and args.trace is None and args.topology is None:
            parser.error("info: the following arguments are required: trace (or --topology)")
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
    if args.topology is not None:
        from .inputs import topology_for
        topo, name = topology_for(args.topology, None)
        print(f"topology {name}: {topo.describe()}")
        print("\n".join(topo.describe_tiers()))
        if args.trace is None:
            return
    if args.batch_rows < 1:
        raise ValueError(f"--batch-rows {args.batch_rows}: expected a positive number")
    print(trace_info(args.trace, batch_rows=args.batch_rows))


def _announce_compile():
    """Say at once when the kernels are about to compile (an empty Numba cache)."""
    from .kernels.cache import cold_start_notice
    notice = cold_start_notice()
    if notice:
        print(notice, file=sys.stderr, flush=True)


def _replay(args):
    from .cli_whatif import config_from_args
    from .whatif import run
    if args.batch_rows < 1:
        raise ValueError(f"--batch-rows {args.batch_rows}: expected a positive number")
    from . import cli_checkpoint
    resumed = cli_checkpoint.resume_setup(args)   # --resume: trace, config from the checkpoint
    if args.trace is None:
        raise ValueError("replay: give a TRACE (or --resume DIR)")
    if args.epoch is not None:
        from .inputs import parse_epoch
        parse_epoch(args.epoch)
    if args.out is not None:                # before the replay, not after it
        from .outdir import check_out_dir
        from .report import REPORT_FILES
        from .trace.reader import trace_files
        for path in trace_files(args.trace):
            check_out_dir(args.out, REPORT_FILES, trace=path)
    if args.heat_buckets < 0:
        raise ValueError(f"--heat-buckets {args.heat_buckets}: expected 0 or more")
    args.strict = args.strict or None
    config = config_from_args(args)          # -c FILE with the options on top
    if resumed is not None:
        config, named = resumed
    elif config.machine or args.config:
        named = args.topology or config.machine_label()
    else:
        from .inputs import topology_for
        _, named = topology_for(args.topology, args.trace)
    _announce_compile()
    import warnings
    from .cli_vis import replay_outputs, run_with_progress
    from .inputs import trace_rows
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = run_with_progress(
            args, lambda: trace_rows(args.trace),
            lambda progress: run(config, args.trace, progress=progress,
                                 batch_rows=args.batch_rows,
                                 heat_buckets=None if resumed else args.heat_buckets or None,
                                 **cli_checkpoint.run_options(args, config, named)))
    for w in caught:                        # a cut stream: one line each, on stderr
        print(f"fastnuma: warning: {w.message}", file=sys.stderr)
    report.topology = f"{named}: {report.topology}"
    replay_outputs(report, args)


def _convert(args):
    import tempfile
    from .trace import convert
    if not 0 <= args.cpu < 1 << 16:
        raise ValueError(f"--cpu {args.cpu}: expected 0..65535 (the trace's cpu is uint16)")
    kw, stats = {}, {}
    if args.format == "lackey":
        kw = {"cpu": args.cpu, "instructions": args.instructions,
              "ns_per_event": args.ns_per_event, "stats": stats,
              "allow_empty": args.allow_empty}
    # convert into a temporary name: an input with no readable records writes nothing
    # (unless --allow-empty), and an existing output stays as it was
    out = os.path.abspath(args.output)
    fd, tmp = tempfile.mkstemp(prefix=".fastnuma-", suffix=os.path.splitext(out)[1],
                               dir=os.path.dirname(out))
    os.close(fd)
    try:
        n = convert.CONVERTERS[args.format](args.input, tmp, **kw)
        if n == 0 and not args.allow_empty:
            raise ValueError(f"{args.input}: no {args.format} records could be read; nothing "
                             f"written (--allow-empty writes an empty trace)")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    print(f"wrote {args.output}: {n} events (from {args.format} {args.input})")
    if stats.get("skipped"):
        print(f"fastnuma: warning: {args.input}: skipped {stats['skipped']} malformed "
              f"line{'s' if stats['skipped'] != 1 else ''} (first: line "
              f"{stats['first_skipped']})", file=sys.stderr)


def _version():
    from importlib.metadata import PackageNotFoundError, version
    from ._version import __version__
    import platform
    deps = []
    for dist in ("numba", "numpy", "pyarrow"):
        try:
            deps.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            pass
    return f"fastnuma {__version__} ({', '.join(deps)}, Python {platform.python_version()})"


def _run(args):
    try:
        if args.command == "demo":
            from .demo import run_demo
            if args.pages < 4 or args.pages > 1 << 20:
                raise ValueError(f"--pages {args.pages}: expected 4..{1 << 20}")
            _announce_compile()
            run_demo(args.pages)
        elif args.command == "generate":
            _generate(args)
        elif args.command == "info":
            _info(args)
        elif args.command == "replay":
            _replay(args)
        elif args.command == "convert":
            _convert(args)
        elif args.command == "compare":
            from .cli_whatif import run_compare
            run_compare(args)
        elif args.command == "plot":
            from .cli_vis import plot_command
            plot_command(args)
        elif args.command == "sweep":
            return _sweep(args)
    except BrokenPipeError:
        raise
    except (OSError, ValueError, TypeError, MemoryError, ImportError) as e:
        print(f"fastnuma: error: {e}", file=sys.stderr)
        return 1
    except Exception as e:                  # noqa: BLE001 - pyarrow's own error classes
        if not type(e).__module__.startswith("pyarrow"):
            raise
        print(f"fastnuma: error: {e}", file=sys.stderr)
        return 1
    return 0
