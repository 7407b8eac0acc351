"""The command line's views of a report: ``replay``'s progress and output formats, the HTML
file, and ``fastnuma plot`` (cli.py parses, these run)."""
import datetime
import os
import sys

from . import __version__


def run_with_progress(args, total_rows, replay):
    """``replay(progress)`` with the progress (progress.py) unless --quiet. The final
    progress line only after a success. ``total_rows()``: the trace's rows from its
    metadata, or None. (A cold kernel cache is announced by the command before.)"""
    from .progress import Progress
    if args.quiet:
        return replay(None)
    try:
        total = total_rows()
    except Exception:        # noqa: BLE001 - a bad file: the replay's reader names the place
        total = None
    progress = Progress(total)
    try:
        report = replay(progress)
    except BaseException:
        if progress.bar is not None:
            progress.bar.close()
        raise
    progress.close()
    return report


def provenance(args):
    """Where the report came from: the command, the trace, the version, when."""
    return {"fastnuma": __version__, "command": " ".join(["fastnuma"] + sys.argv[1:])
            if sys.argv and os.path.basename(sys.argv[0]) in ("fastnuma", "__main__.py")
            else f"fastnuma replay {args.trace}",
            "trace": os.path.abspath(args.trace),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds")}


def replay_outputs(report, args):
    """stdout in --format, then --out's directory and --html's file."""
    from .formats import json_text, vmstat_text
    # the run's configuration and trace fingerprint (whatif.run) win over the command's
    report.provenance = {**provenance(args), **(getattr(report, "provenance", None) or {})}
    if args.format == "text":
        print(report.summary())
        if getattr(report, "cost", None):
            from .whatif import cost_summary
            print(cost_summary(report))
    elif args.format == "json":
        print(json_text(report))
    else:
        print(vmstat_text(report))
    if args.out is not None:
        report.write(args.out)
        if args.format == "text":
            print(f"report written to {args.out}")
    if args.html:
        from .html import report_html, write_html
        write_html(args.html, report_html(report))
        if args.format == "text":
            print(f"HTML report written to {args.html}")


def plot_command(args):
    from .html import report_html, write_html
    from .plot import KINDS, plot_report, save_figures
    from .view import read_report_dir
    view = read_report_dir(args.report)
    kinds = None
    if args.kinds:
        kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
        bad = [k for k in kinds if k not in KINDS]
        if bad:
            raise ValueError(f"--kinds {bad[0]!r}: expected some of {', '.join(KINDS)}")
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    for f in formats:
        if f not in ("png", "svg", "pdf"):
            raise ValueError(f"--formats {f!r}: expected png, svg or pdf")
    if args.output is None and args.html is None:
        raise ValueError("plot: give -o DIR (figures) and/or --html [FILE]")
    if args.output is not None and os.path.exists(args.output) \
            and not os.path.isdir(args.output):
        raise ValueError(f"-o {args.output!r} exists and is not a directory")
    if args.output is not None:
        figures = plot_report(view, kinds)          # all drawn before anything is written
        for path in save_figures(figures, args.output, formats):
            print(f"wrote {path}")
    if args.html is not None:
        path = args.html or os.path.join(args.output or args.report, "report.html")
        write_html(path, report_html(view))
        print(f"wrote {path}")
