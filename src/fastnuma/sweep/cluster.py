"""Running a grid on Dask (``dask.distributed``): an in-process LocalCluster by default,
or an existing scheduler (``--scheduler`` / ``DASK_SCHEDULER_ADDRESS``).

Each trace is first surveyed by a worker (rows, distinct pages and blocks: one streaming
pass); its combinations are then submitted with their memory estimate as the worker
resource ``MEMORY`` (bytes), so a worker never runs more replays at once than its declared
memory holds. Tasks carry only the trace's path or URL and the parameters: workers read
the trace themselves, nothing large goes through the scheduler, and results come back as
plain rows, never a Simulator.
"""
import logging
import os
import time

from .grid import combination_key
from .progress import SweepProgress
from .run import estimate_memory, run_combination, survey_trace
from .store import ResultStore

log = logging.getLogger("fastnuma.sweep")
RESOURCE = "MEMORY"
#: share of a LocalCluster worker's memory limit offered to replays as MEMORY (the rest:
#: the worker process itself, and headroom before Dask's pause threshold at 80 %)
RESOURCE_SHARE = 0.7


def _dask():
    try:
        import distributed
    except ImportError:
        raise ValueError("fastnuma sweep needs Dask: pip install 'fastnuma[sweep]'") from None
    return distributed


def local_cluster(workers=None, memory_limit=None, processes=True):
    """A LocalCluster: ``workers`` (default: the CPUs this process may use) of one thread
    each, every worker limited to ``memory_limit`` bytes (default: the machine's memory
    divided among them) and declaring 70 % of it as the MEMORY resource."""
    distributed = _dask()
    from distributed.system import MEMORY_LIMIT
    if not workers:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else os.cpu_count()
    limit = int(memory_limit or MEMORY_LIMIT // workers)
    return distributed.LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=processes, memory_limit=limit,
        resources={RESOURCE: int(limit * RESOURCE_SHARE)}, dashboard_address=":0")


def connect(scheduler=None, workers=None, memory_limit=None, processes=True):
    """(client, cluster or None): to ``scheduler`` (or DASK_SCHEDULER_ADDRESS), else to a
    new LocalCluster that the caller closes."""
    distributed = _dask()
    import dask
    scheduler = scheduler or dask.config.get("scheduler-address", None)
    if scheduler:
        try:
            return distributed.Client(scheduler, timeout="20s"), None
        except OSError as e:
            raise ValueError(f"--scheduler {scheduler}: cannot connect ({e})") from None
    cluster = local_cluster(workers, memory_limit, processes)
    return distributed.Client(cluster), cluster


def dashboard(client):
    """The dashboard's link, or None when nothing answers there (a scheduler started
    with --no-dashboard still lists the service)."""
    import urllib.request
    if "dashboard" not in client.scheduler_info().get("services", {}):
        return None
    link = client.dashboard_link
    try:
        with urllib.request.urlopen(link, timeout=2):
            return link
    except (OSError, ValueError):
        return None


def _worker_memory(client):
    """The largest MEMORY resource a worker declares, or None when none declares it."""
    declared = [w.get("resources", {}).get(RESOURCE)
                for w in client.scheduler_info()["workers"].values()]
    declared = [d for d in declared if d]
    return max(declared) if declared else None


def run_sweep(grid, output, client, *, progress=True, log_interval=10.0,
              flush_interval=1.0):
    """Run every combination of ``grid`` not already finished in ``output`` on
    ``client``'s cluster; the table is rewritten whole at most every ``flush_interval``
    seconds while results arrive and once at the end (or on interruption). ``progress``:
    a bar or log lines every ``log_interval`` s (see progress.py), False for none. Returns
    {"total", "skipped", "ran", "failed"}."""
    distributed = _dask()
    store = ResultStore(output, grid=grid.path)
    config_columns = ["trace"] + list(grid.fixed) + list(grid.axes)
    combos = [(combination_key(t, p), t, p) for t, p in grid.combinations()]
    finished = store.finished()
    todo = [c for c in combos if c[0] not in finished]
    stats = {"total": len(combos), "skipped": len(combos) - len(todo), "ran": 0,
             "failed": 0}
    if not todo:
        return stats
    client.wait_for_workers(1, timeout=60)
    capacity = _worker_memory(client)
    if capacity is None:
        log.warning("sweep: no worker declares a %s resource: tasks are not limited by "
                    "memory (start workers with --resources %s=BYTES)", RESOURCE, RESOURCE)
    bar = SweepProgress(len(todo), interval=log_interval) if progress else _Silent()
    by_trace = {}
    for c in todo:
        by_trace.setdefault(c[1], []).append(c)
    surveys = {client.submit(survey_trace, t, pure=False): t for t in by_trace}
    pending = distributed.as_completed(list(surveys))
    tasks = {}
    last_flush = last_poll = time.monotonic()
    running = 0
    try:
        while not pending.is_empty():
            ready = pending.next_batch(block=False)
            if not ready:
                time.sleep(0.1)
            for future in ready:
                if future in surveys:
                    _submit(client, future, by_trace[surveys.pop(future)], capacity, tasks,
                            pending, store, config_columns, stats)
                else:
                    key, trace, params = tasks.pop(future)
                    try:
                        row = future.result()
                    except Exception as e:     # noqa: BLE001 - e.g. KilledWorker: the
                        row = _failed(key, trace, params,   # worker died (out of memory?)
                                      f"{type(e).__name__}: {e}")
                    store.add(row, config_columns)
                    stats["ran"] += 1
                    stats["failed"] += row["status"] != "ok"
            now = time.monotonic()
            if now - last_flush >= flush_interval:
                store.flush()
                last_flush = now
            if ready or now - last_poll >= 1.0:
                running, last_poll = _running(client, tasks), now
                bar.update(stats["ran"], stats["failed"], running)
    finally:
        store.flush()
        bar.close()
        for f in tasks:
            f.cancel()
    return stats


def _submit(client, survey, combos, capacity, tasks, pending, store, config_columns,
            stats):
    """The combinations of one surveyed trace, each with its memory estimate; a survey
    that failed, or a task larger than every worker, is a failed row at once."""
    try:
        info = survey.result()
    except Exception as e:                     # noqa: BLE001 - the trace's rows record it
        for key, trace, params in combos:
            store.add(_failed(key, trace, params, f"{type(e).__name__}: {e}"),
                      config_columns)
            stats["ran"] += 1
            stats["failed"] += 1
        return
    for key, trace, params in combos:
        need = estimate_memory(info, params)
        if capacity is not None and need > capacity:
            store.add(_failed(key, trace, params, f"MemoryError: needs about {need:,} bytes "
                              f"(estimate); the largest worker offers {int(capacity):,}"),
                      config_columns)
            stats["ran"] += 1
            stats["failed"] += 1
            continue
        resources = {RESOURCE: need} if capacity is not None else None
        f = client.submit(run_combination, trace, params, key, need, pure=False,
                          resources=resources, key=f"fastnuma-replay-{key}")
        tasks[f] = (key, trace, params)
        pending.add(f)


def _failed(key, trace, params, error):
    from .run import _cell
    return {"combination": key, "trace": trace, **{k: _cell(v) for k, v in params.items()},
            "status": "failed", "error": error}


def _running(client, tasks):
    """Replays on a worker right now: tasks the scheduler has handed to workers, at most
    one per worker thread (a worker may hold more, waiting for its MEMORY to free)."""
    if not tasks:
        return 0
    keys = {f.key for f in tasks}
    try:
        processing = client.processing()
        threads = client.nthreads()
    except Exception:                          # noqa: BLE001 - progress only
        return 0
    return sum(min(threads.get(w, 1), sum(k in keys for k in ks))
               for w, ks in processing.items())


class _Silent:
    def update(self, *args):
        pass

    def close(self):
        pass
