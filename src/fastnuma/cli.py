"""The ``fastnuma`` command line. Errors are one line and a non-zero exit status."""
import argparse
import os
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastnuma",
                                     description="Simulate Linux NUMA memory placement.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the bundled example and print its counters")
    demo.add_argument("--pages", type=int, default=1 << 16,
                      help="size of the example's array in 4 KiB pages (default 65536)")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except BrokenPipeError:                 # `fastnuma demo | head`: the reader went away
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _run(args):
    try:
        if args.command == "demo":
            from .demo import run_demo
            if args.pages < 4 or args.pages > 1 << 20:
                raise ValueError(f"--pages {args.pages}: expected 4..{1 << 20}")
            run_demo(args.pages)
    except BrokenPipeError:
        raise
    except (OSError, ValueError, TypeError) as e:
        print(f"fastnuma: error: {e}", file=sys.stderr)
        return 1
    return 0
