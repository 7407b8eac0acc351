"""Trace replay: trace batches (trace/reader.py) through the event loop (kernels/events.py).

Accesses run in the Numba loop; it comes back here only for what Python owns: a control
event (MMAP, MUNMAP, MBIND, SET_MEMPOLICY, MOVE_PAGES, SCHED, MADVISE, applied through the
public calls), a thread or process seen for the first time (created with the trace's ids),
NUMA-balancing ticks that are due before the next event, the end of an epoch, an access
outside every mapping (an implicit mapping, or a segfault event in strict mode), an
out-of-memory kill, or a table that must grow. Results do not depend on the batch size
or the file format: the loop stops at the same events whatever the batches are.
"""
from __future__ import annotations

import errno
from contextlib import closing

import numpy as np

from .constants import (MAP_ANONYMOUS, MAP_PRIVATE, NEVER, OP_MADVISE, OP_MBIND, OP_MMAP,
                        OP_MOVE_PAGES, OP_MUNMAP, OP_SCHED, OP_SET_MEMPOLICY, PAGE_SHIFT,
                        TIME_LIMIT_NS)
from .dtypes import (EV_BAD_CPU, EV_BAD_PID, EV_CONTROL, EV_DONE, EV_NEED_GROW, EV_NEW_THREAD,
                     EV_OOM, EV_SEGV, EV_TIME, PTRS_PER_PMD, VMA_DTYPE)
from .errors import TraceError
from .kernels.events import compile_fault_path_ahead, run_events
from .memory import hit_scratch
from .migrate import move_pages_range
from .report import Report, ReportBuilder  # noqa: F401  (Report: the return type)
from .trace.reader import DEFAULT_BATCH_ROWS, cut_message, open_trace

DEFAULT_EPOCH_EVENTS = 1_000_000
IMPLICIT_REGION_PAGES = PTRS_PER_PMD  # an implicit mapping covers the access's 2 MiB region
_NO_VMAS = np.zeros(0, VMA_DTYPE)
_OP_NAMES = {OP_MMAP: "MMAP", OP_MUNMAP: "MUNMAP", OP_MBIND: "MBIND",
             OP_SET_MEMPOLICY: "SET_MEMPOLICY", OP_MOVE_PAGES: "MOVE_PAGES",
             OP_SCHED: "SCHED", OP_MADVISE: "MADVISE"}


class Replay:
    """``Simulator.replay``: ``calls`` is the object whose public system calls (mmap,
    munmap, mbind, set_mempolicy, move_pages, madvise) apply the trace's control events."""

    def __init__(self, machine, sched, numab, stats, calls):
        self.m = machine
        self.sched = sched
        self.numab = numab
        self.stats = stats
        self.calls = calls

    def replay(self, source, *, batch_rows=DEFAULT_BATCH_ROWS, epoch_events=None,
               epoch_ns=None, strict=False, progress=None, task_policy=None, cpu_map=None,
               heat_buckets=None, checkpoint=None, checkpoint_every=None,
               checkpoint_meta=None, resume=False, on_batch=None):
        """Replay a trace (a path, directory or glob of .arrow/.feather/.arrows/.parquet
        files, a pyarrow Table or RecordBatchReader) and return its :class:`Report`.

        Times: an event at ``ts`` runs at ``now_ns + (ts - ts of the first event)``; NUMA
        balancing ticks due before an event run first. ``epoch_events`` / ``epoch_ns``:
        the report's time series gets one row per that many events / nanoseconds (one of
        them; default 1,000,000 events). ``strict``: an access outside every mapping is a segmentation-fault event
        (the access is dropped) instead of an implicit private anonymous mapping of its
        2 MiB region. ``progress(rows_done)`` is called after every batch.
        ``task_policy``: a numactl policy (``"interleave:all"``, a
        :class:`fastnuma.numactl.TaskPolicy`) set on every traced process at its first
        event; ``cpu_map``: a :class:`fastnuma.numactl.CpuPlacement` (or its mode name)
        remapping the trace's CPUs (docs/run-config.md).
        ``heat_buckets``: at each epoch, record pages per node in that many address ranges
        of every process (the report's ``heat`` table, for the placement heatmap).

        A replay streams (docs/api.md): when it raises, the rows before the failure stay
        applied and the exception carries ``rows_replayed``.
        ``checkpoint``, ``checkpoint_every``, ``checkpoint_meta``, ``resume``: see
        checkpoint_replay.py (docs/checkpoint.md).
        ``on_batch(batch, epoch_ends)``: called after each batch has replayed, with the
        batch (a trace.reader.TraceBatch, CPUs as the machine's) and the end rows of the
        epochs closed so far (an int64 array; the what-if run's cost model counts so);
        when resuming, the batches after the checkpoint only.
        """
        if checkpoint is not None or resume:           # checkpoints: checkpoint_replay.py
            from .checkpoint_replay import replay_checkpointed
            return replay_checkpointed(
                self, source, batch_rows=batch_rows, epoch_events=epoch_events,
                epoch_ns=epoch_ns, strict=strict, progress=progress, task_policy=task_policy,
                cpu_map=cpu_map, heat_buckets=heat_buckets, checkpoint=checkpoint,
                checkpoint_every=checkpoint_every, checkpoint_meta=checkpoint_meta,
                resume=resume, on_batch=on_batch)
        run, remap = self.new_run(epoch_events, epoch_ns, strict, task_policy, cpu_map,
                                  heat_buckets, batch_rows)
        try:
            with self.batches(source, batch_rows, strict) as batches:
                for batch in batches:
                    run.batch(remap(batch) if remap else batch, on_batch)
                    if progress is not None:
                        progress(batch.row + len(batch))
        except BaseException as e:     # streaming semantics (docs/api.md): rows applied stay
            e.rows_replayed = run.rows
            raise
        return run.finish()

    def new_run(self, epoch_events, epoch_ns, strict, task_policy=None, cpu_map=None,
                heat_buckets=None, batch_rows=DEFAULT_BATCH_ROWS):
        """A new replay's state (_Replay), its arguments checked, and its batch remapper
        (the what-if CPU map) or None."""
        if epoch_events is not None and epoch_ns is not None:
            raise ValueError("give epoch_events or epoch_ns, not both")
        if epoch_ns is None and epoch_events is None:
            epoch_events = DEFAULT_EPOCH_EVENTS
        for name, value in (("epoch_events", epoch_events), ("epoch_ns", epoch_ns)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                      or not 1 <= value < TIME_LIMIT_NS):
                raise ValueError(f"{name} must be a positive int below 2**62, not {value!r}")
        run = _Replay(self, epoch_events, epoch_ns, strict, heat_buckets)
        return run, run.what_if(task_policy, cpu_map, batch_rows)   # what-if hook (numactl.py)

    @staticmethod
    def batches(source, batch_rows, strict):
        """The trace's batches, read ahead on a second thread (trace/readahead.py), as a
        context manager that stops the reader; a stream cut short is an error under
        ``strict``."""
        return closing(open_trace(source, batch_rows, on_cut=_cut_strict if strict else None,
                                  read_ahead=True))


def _cut_strict(path):
    raise TraceError(cut_message(path) + " (an error under strict=True)", path=path)


class _Replay:
    """The state of one replay: the time base, the epoch clock and the report."""

    def __init__(self, owner, epoch_events, epoch_ns, strict, heat_buckets=None):
        self.owner = owner
        self.m = sim = owner.m
        self.strict = strict
        self.epoch_events = epoch_events
        self.epoch_ns = epoch_ns
        self.t0 = sim.now_ns
        self.ts_base = None              # ts of the first event
        self.rows = 0
        self.next_epoch_row = epoch_events or NEVER
        self.next_epoch_ts = NEVER      # in trace ts units, once the base is known
        heat = None
        if heat_buckets is not None:          # the placement heatmap's sampler
            from .heat import HeatRecorder
            heat = HeatRecorder(sim, heat_buckets)
        tier = sim.tiering is not None and sim.tiering.on     # docs/tiering.md §13
        self.report = ReportBuilder(sim.access_counts, sim.vm, sim.node_pages, sim.free,
                                    heat=heat, node_rows=sim.numa_nodes if tier else None)
        self.pos = np.zeros(1, np.int64)
        self.task_policy = None

    def what_if(self, task_policy, cpu_map, batch_rows):
        """Set up the run's numactl policy and CPU map; returns the batch remapper or
        None."""
        from .numactl import CpuMapper, CpuPlacement, TaskPolicy, parse_policy
        if task_policy is not None and not isinstance(task_policy, TaskPolicy):
            task_policy = parse_policy(task_policy, self.m.topology)
        self.task_policy = task_policy
        if isinstance(cpu_map, str):
            cpu_map = CpuPlacement(cpu_map)
        if isinstance(cpu_map, CpuMapper):
            return cpu_map
        if cpu_map is None or cpu_map.is_identity():
            return None
        return cpu_map.mapper(self.m.topology, batch_rows)

    # ---------------------------------------------------------------- one batch
    def batch(self, b, on_batch=None):
        """Replay batch ``b``, then call ``on_batch(b, epoch end rows)`` (Replay.replay)."""
        sim = self.m
        n = len(b)
        if not n:
            return
        if self.ts_base is None:
            self.ts_base = int(b.ts[0])
            if self.epoch_ns:
                self.next_epoch_ts = self.ts_base + self.epoch_ns
        offset = self.t0 - self.ts_base
        if int(b.ts[-1]) + offset >= TIME_LIMIT_NS:      # once per batch: ts is sorted
            k = int(np.searchsorted(b.ts, np.uint64(TIME_LIMIT_NS - offset)))
            raise TraceError(f"simulated time would reach 2**62 ns, the end of fastnuma's time "
                             f"domain (replay starts at {self.t0} ns, first ts "
                             f"{self.ts_base})", path=b.path, column="ts", row=b.row + k,
                             value=int(b.ts[k]))
        ts = b.ts.view(np.int64)
        compile_fault_path_ahead(sim.st, (b.addr, b.op, b.cpu, b.tid, b.pid, ts))
        i = 0
        while i < n:
            stop = min(n, self.next_epoch_row - b.row)
            stop_ts = min(self._next_tick_ts(offset), self.next_epoch_ts)
            vmas, lo, hi, procs = self._vma_spans()
            status = run_events(sim.st, vmas, lo, hi, sim.tid_keys, sim.tid_vals, b.addr,
                                b.op, b.cpu, b.tid, b.pid, ts, i, stop, stop_ts, self.pos,
                                sim.access_counts, offset, *hit_scratch())
            self._sync_views(vmas, procs)
            ran = int(self.pos[0]) - i
            i += ran
            row = self.rows = b.row + i        # the rows before ``row`` are applied
            if ran:                       # the loop sets the clock for faults only
                sim.now_ns = max(sim.now_ns, int(ts[i - 1]) + offset)
            if status == EV_DONE:
                self._after_event(row)
            elif status == EV_TIME:
                t = int(ts[i])
                if t >= self.next_epoch_ts:
                    self.owner.numab.run_until(self.next_epoch_ts + offset)
                    self.report.epoch(row, sim.now_ns)
                    self.next_epoch_ts += self.epoch_ns
                else:
                    self.owner.numab.run_until(t + offset)
            elif status == EV_NEED_GROW:
                sim.pt.grow()
            elif status == EV_NEW_THREAD:
                self._new_thread(b, i)
            elif status == EV_CONTROL:
                sim.now_ns = int(ts[i]) + offset
                self._control(b, i)
                i += 1
                self._after_event(b.row + i)
            elif status == EV_SEGV:
                if self._implicit_mmap(b, i):
                    continue
                self.report.fault_event(row, "segfault", int(b.pid[i]), int(b.tid[i]),
                                        int(b.addr[i]))
                i += 1
                self._after_event(b.row + i)
            elif status == EV_OOM:
                pid = int(b.pid[i])
                self.report.fault_event(row, "oom_kill", pid, int(b.tid[i]), int(b.addr[i]))
                self.owner.sched.oom_kill(sim.procs[pid])
                i += 1
                self._after_event(b.row + i)
            elif status == EV_BAD_PID:
                tid = int(b.tid[i])
                raise TraceError(f"thread {tid} belongs to process {sim.threads[tid].pid}",
                                 path=b.path, column="pid", row=row, value=int(b.pid[i]))
            else:
                assert status == EV_BAD_CPU
                raise TraceError(f"no such CPU in the topology (CPUs 0.."
                                 f"{sim.topology.n_cpus - 1})", path=b.path, column="cpu",
                                 row=row, value=int(b.cpu[i]))
        self.rows = b.row + n
        if on_batch is not None:
            on_batch(b, self.report.epochs.end_rows)

    def _after_event(self, rows_done):
        if rows_done == self.next_epoch_row:
            self.report.epoch(rows_done, self.m.now_ns)
            self.next_epoch_row += self.epoch_events

    def _next_tick_ts(self, offset):
        """The first time (trace units) at which NUMA-balancing ticks are due."""
        sim = self.m
        due = NEVER
        if sim.config.numa_balancing and sim.threads:
            due = min(self.owner.numab.next_tick(th) for th in sim.threads.values())
        kswapd = sim.tiering.next_kswapd_ns() if sim.tiering is not None else None
        if kswapd is not None:          # docs/tiering.md D2: a kswapd run is due then
            due = min(due, kswapd)
        return NEVER if due == NEVER else due - offset

    def _vma_spans(self):
        """The VMA rows of every process in one array, and each address space's span."""
        sim = self.m
        procs = list(sim.procs.values())
        views = [sim.kernel_vmas(p) for p in procs]
        lo, hi = sim.vma_lo, sim.vma_hi
        k = 0
        for p, v in zip(procs, views):
            lo[p.asid], hi[p.asid] = k, k + len(v)
            k += len(v)
        if len(views) == 1:
            return views[0], lo, hi, procs
        return (np.concatenate(views) if views else _NO_VMAS), lo, hi, procs

    def _sync_views(self, vmas, procs):
        """Copy back what the loop wrote in the joined rows, then into the VMAs."""
        sim = self.m
        for p in procs:
            view = p.vmas.current_view()
            if view is not None and view is not vmas:
                view[:] = vmas[sim.vma_lo[p.asid]:sim.vma_hi[p.asid]]
            p.vmas.sync_from_view()

    # ---------------------------------------------------------------- events
    def _thread_of(self, b, i):
        """The event's thread, created (with the trace's ids) if this is its first event;
        its CPU becomes the event's."""
        sim = self.m
        tid, pid, cpu = int(b.tid[i]), int(b.pid[i]), int(b.cpu[i])
        if not 0 <= cpu < sim.topology.n_cpus or sim.topology.cpu_node[cpu] < 0:
            raise TraceError(f"no such CPU in the topology (CPUs 0..{sim.topology.n_cpus - 1})",
                             path=b.path, column="cpu", row=b.row + i, value=cpu)
        th = sim.threads.get(tid)
        if th is None:
            new_process = pid not in sim.procs
            th = self.owner.sched.adopt_thread(pid, tid, cpu)
            if new_process and self.task_policy is not None:
                self.task_policy.apply(self.owner.calls, tid)    # as if numactl started it
        elif th.pid != pid:
            raise TraceError(f"thread {tid} belongs to process {th.pid}", path=b.path,
                             column="pid", row=b.row + i, value=pid)
        th.cpu = cpu
        return th

    def _new_thread(self, b, i):
        self.m.now_ns = int(b.ts[i]) + self.t0 - self.ts_base
        self._thread_of(b, i)

    def _control(self, b, i):
        """Apply control event i through the public calls; a failing call is recorded in
        the report (with its errno), as a program would see it fail."""
        sim = self.owner.calls
        th = self._thread_of(b, i)
        op = int(b.op[i])
        addr, length = int(b.addr[i]), int(b.len[i])
        try:
            if op == OP_MMAP:
                sim.mmap(th.pid, length, int(b.flags[i]), addr=addr)
            elif op == OP_MUNMAP:
                sim.munmap(th.pid, addr, length)
            elif op == OP_MBIND:
                sim.mbind(th.pid, addr, length, int(b.mode[i]), int(b.nodemask[i]),
                          int(b.flags[i]), tid=th.tid)
            elif op == OP_SET_MEMPOLICY:
                sim.set_mempolicy(th.tid, int(b.mode[i]), int(b.nodemask[i]))
            elif op == OP_MOVE_PAGES:
                mask = int(b.nodemask[i])
                if mask & (mask - 1) or not mask:
                    raise TraceError("MOVE_PAGES needs exactly one node in nodemask",
                                     path=b.path, column="nodemask", row=b.row + i, value=mask)
                pages = move_pages_range(self.m.procs[th.pid], addr, length)
                sim.move_pages(th.pid, pages, np.full(pages.size, mask.bit_length() - 1))
            elif op == OP_SCHED:
                pass                                  # _thread_of moved it
            elif op == OP_MADVISE:
                sim.madvise(th.pid, addr, length, int(b.flags[i]))
        except OSError as e:
            self.report.failed_call(b.row + i, _OP_NAMES[op], th.pid, th.tid, e.errno,
                                    str(e))

    def _implicit_mmap(self, b, i):
        """A bare access trace maps what it touches: the free parts of the access's 2 MiB
        region become private anonymous memory. False in strict mode or when the address
        cannot be mapped (beyond the user address space)."""
        sim = self.m
        if self.strict:
            return False
        proc = sim.procs[int(b.pid[i])]
        addr = int(b.addr[i])
        if proc.vmas.find(addr >> PAGE_SHIFT) is not None:
            return False                    # mapped: its protection forbids the access
        lo = (addr >> PAGE_SHIFT) & ~(IMPLICIT_REGION_PAGES - 1)
        hi = lo + IMPLICIT_REGION_PAGES
        pos = lo
        gaps = []
        for v in proc.vmas.overlapping(lo, hi) + [None]:
            end = hi if v is None else v.start
            if end > pos:
                gaps.append((pos, end))
            if v is not None:
                pos = max(pos, v.end)
        try:
            for a, e in gaps:
                self.owner.calls.mmap(proc.pid, (e - a) << PAGE_SHIFT, MAP_PRIVATE | MAP_ANONYMOUS,
                         addr=a << PAGE_SHIFT)
        except OSError as e:
            if e.errno in (errno.ENOMEM, errno.EINVAL):
                return False
            raise
        self.report.implicit_mapping()
        return True

    def finish(self):
        if self.epoch_events and self.rows != self.next_epoch_row - self.epoch_events:
            self.report.epoch(self.rows, self.m.now_ns)        # the last, partial epoch
        elif self.epoch_ns:
            self.report.epoch(self.rows, self.m.now_ns)
        owner = self.owner
        sim = self.m
        vmstat = owner.stats.vmstat()
        tier = sim.tiering is not None and sim.tiering.on
        if tier:                                   # docs/tiering.md §8, §10
            vmstat.update(sim.tiering.vmstat())
        maps = {pid: owner.stats.numa_maps_placed(pid) for pid in sorted(sim.procs)}
        return self.report.build(self.rows, topology=sim.topology.describe(),
                                 knobs=sim.config.describe(), vmstat=vmstat,
                                 node_vmstat=sim.tiering.node_vmstat() if tier else None,
                                 numastat=owner.stats.numastat(),
                                 threads=owner.stats.threads(),
                                 placement={pid: placed for pid, (_, placed) in maps.items()},
                                 now_ns=sim.now_ns,
                                 numa_maps={pid: text for pid, (text, _) in maps.items()})
