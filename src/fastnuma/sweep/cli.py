"""``fastnuma sweep GRID.toml -o RESULTS.parquet``: the command behind fastnuma.cli."""
import logging
import os
import sys

from .grid import load_grid


def run_sweep_command(args):
    """Check the grid and the output first (nothing is started or written on bad
    input), then connect, run, and print one summary line. Returns the exit status:
    0, or 3 when some combination failed (its row has the error)."""
    if not args.output.endswith(".parquet"):
        raise ValueError(f"-o {args.output!r}: the results table is a .parquet file")
    if os.path.isdir(args.output):
        raise ValueError(f"-o {args.output!r} is a directory")
    html = getattr(args, "html", None)
    if html is not None and os.path.isdir(html):
        raise ValueError(f"--html {html!r} is a directory")
    for flag, v in (("--workers", args.workers), ("--memory-limit", args.memory_limit)):
        if v is not None and v < 1:
            raise ValueError(f"{flag} {v}: expected a positive number")
    grid = load_grid(args.grid)
    from .store import ResultStore
    ResultStore(args.output)               # refuses a file that is not a sweep table
    log = logging.getLogger("fastnuma.sweep")       # progress lines; Dask's own stay quiet
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    saved = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        return _run(args, grid)
    finally:
        log.removeHandler(handler)
        log.setLevel(saved[0])
        log.propagate = saved[1]


def _run(args, grid):
    from .cluster import connect, dashboard, run_sweep
    total = len(grid.combinations())
    client, cluster = connect(args.scheduler, args.workers, args.memory_limit)
    try:
        client.wait_for_workers(1, timeout=60)
        where = cluster and "a local cluster" or f"scheduler {client.scheduler.address}"
        workers = len(client.scheduler_info()["workers"])
        print(f"sweep: {total} combinations on {where} ({workers} worker"
              f"{'s' if workers != 1 else ''} connected)", flush=True)
        link = dashboard(client)
        if link:
            print(f"dashboard: {link}", flush=True)
        stats = run_sweep(grid, args.output, client, progress=not args.no_progress,
                          log_interval=args.log_interval)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    print(f"sweep: {stats['ran']} ran ({stats['failed']} failed), {stats['skipped']} "
          f"already in {args.output}; {stats['total']} combinations")
    if getattr(args, "html", None) is not None and os.path.exists(args.output):
        from ..html import write_html
        from ..html_results import read_sweep_table, sweep_html
        write_html(args.html, sweep_html(read_sweep_table(args.output)))
        print(f"HTML page written to {args.html}")
    return 3 if stats["failed"] else 0
