"""The ``fastnuma`` command line. Errors are one line and a non-zero exit status.

    fastnuma demo [--pages N]
    fastnuma generate SCENARIO --events N [--seed S] -o FILE [--nodes ...] [--pages ...]
    fastnuma info TRACE
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
    except BrokenPipeError:
        raise
    except (OSError, ValueError, TypeError, NotImplementedError, MemoryError) as e:
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
