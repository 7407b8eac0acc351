"""Checkpoints (docs/checkpoint.md): a replay interrupted at any event (mid-batch, during a
NUMA-balancing scan) and resumed ends with the report and machine of an uninterrupted run;
a process killed while writing leaves the previous checkpoint loadable; Simulator and
Report pickle through the same codec; other versions, traces and corrupt files are refused
with one line."""
import json
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import fastnuma as fn
from fastnuma import checkpoint
from fastnuma.checkpoint import CheckpointError
from fastnuma.cli import main
from fastnuma.cli_checkpoint import parse_count
from fastnuma.dtypes import M_SCAN_OFFSET
from tests.test_replay import KNOBS, comparable, random_program, table, topo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUMA01 = os.path.join(ROOT, "traces", "numa01_2node.arrows")
SCAN = dict(numa_balancing=1, numa_balancing_scan_size_mb=1, numa_balancing_scan_delay_ms=50,
            numa_balancing_scan_period_min_ms=20)     # passes of 256 pages: scans span VMAs


class Stop(Exception):
    """Stands for the process dying after a checkpoint."""


def machine_state(sim):
    """What the simulator holds at the end, beyond the report."""
    out = {"vmstat": sim.vmstat(), "numastat": sim.numastat(), "now": sim.now_ns,
           "free": sim.free_pages().tolist(), "access": sim.access_counts.tolist()}
    for pid in sim.pids():
        out[f"maps{pid}"] = sim.numa_maps(pid)
        for tid in sim.tids(pid):
            out[f"task{tid}"] = sim.task_numa_stats(tid)
    return out


def interrupted(make, source, stops, *, every, batch_rows, tmp_path, **kw):
    """Replay ``source`` with checkpoints, dying after event ``stops[0]`` (the progress
    callback raises), resume, die after ``stops[1]``, ... then resume to the end. Returns
    the final simulator, report, and the positions and scan offsets of the checkpoints
    resumed from."""
    d = tmp_path / "ck"
    seen = []
    sim = make()
    for k, stop in enumerate(stops + [None]):
        def progress(rows, stop=stop):
            if stop is not None and rows >= stop:
                raise Stop
        try:
            if k == 0:
                report = sim.replay(source, batch_rows=batch_rows, checkpoint=d,
                                    checkpoint_every=every, progress=progress, **kw)
            else:
                report = sim.replay(resume=True, batch_rows=batch_rows, progress=progress,
                                    **({} if isinstance(source, str) else {"source": source}))
        except Stop:
            sim = fn.Simulator.load(d)
            rows = checkpoint.info(d)["replay"]["rows"]
            seen.append((rows, int(sim.machine.mms[:, M_SCAN_OFFSET].any())))
            continue
        return sim, report, seen
    raise AssertionError("the last run did not finish")


@pytest.mark.parametrize("every, batch_rows, stops", [
    (777, 300, [1600]),                 # mid-batch, during a scan
    (1000, 1000, [1000, 5000]),         # at batch ends, twice
    (250, 4096, [300, 2000, 7000]),     # several checkpoints per batch, three interruptions
])
def test_numa01_with_balancing_resumes_identically(tmp_path, every, batch_rows, stops):
    def make():
        return fn.Simulator(fn.Topology.uniform(nodes=2, cpus_per_node=4), **SCAN)
    ref_sim = make()
    ref = ref_sim.replay(NUMA01, epoch_events=500)
    sim, got, seen = interrupted(make, NUMA01, stops, every=every, batch_rows=batch_rows,
                                 tmp_path=tmp_path, epoch_events=500)
    assert comparable(got) == comparable(ref)
    assert machine_state(sim) == machine_state(ref_sim)
    assert ref.vmstat["numa_pages_migrated"] > 0
    rows = [r for r, _ in seen]
    assert all(r % every == 0 for r in rows) and len(rows) == len(stops)
    if every == 777:
        assert rows[0] % batch_rows != 0            # the batch was split at the checkpoint
        assert seen[0][1] == 1                      # a scan pass was under way


def test_random_program_from_a_table_resumes_identically(tmp_path):
    """An in-memory trace (Table fingerprint), the scanner with small knobs, an interleave
    and a lazy mbind, time-based epochs."""
    t = table(random_program(4, bursts=True))
    ref_sim = fn.Simulator(topo(), **KNOBS)
    ref = ref_sim.replay(t, epoch_ns=20_000_000)
    sim, got, seen = interrupted(lambda: fn.Simulator(topo(), **KNOBS), t, [100, 900],
                                 every=97, batch_rows=64, tmp_path=tmp_path,
                                 epoch_ns=20_000_000)
    assert comparable(got) == comparable(ref)
    assert machine_state(sim) == machine_state(ref_sim)
    assert len(ref.epochs) > 3 and ref.vmstat["numa_hint_faults"] > 0
    assert [r for r, _ in seen] == [97, 873]


def test_faults_and_failed_calls_so_far_are_kept(tmp_path):
    """The report so far (segfault events, failed calls) is part of the checkpoint."""
    base = 0x7f0000000000 - (64 << 20)
    ev = [dict(op=fn.OP_MMAP, addr=base, len=1 << 20, flags=fn.MAP_PRIVATE | fn.MAP_ANONYMOUS,
               tid=1, pid=1)]
    for k in range(600):
        if k % 50 == 7:
            ev.append(dict(op=fn.OP_MBIND, addr=base + 1, len=4096, mode=fn.MPOL_BIND,
                           nodemask=1, tid=1, pid=1))              # EINVAL: unaligned
        ev.append(dict(op=fn.OP_WRITE, addr=base + (k % 300) * 4096 + (k % 3) * (1 << 30),
                       tid=1, pid=1))                              # 1/3 outside: segfaults
    path = str(tmp_path / "t.parquet")
    pq.write_table(table(ev), path)
    ref = fn.Simulator(topo()).replay(path, strict=True, epoch_events=100)
    _, got, _ = interrupted(lambda: fn.Simulator(topo()), path, [400], every=333,
                            batch_rows=128, tmp_path=tmp_path, strict=True, epoch_events=100)
    assert len(ref.faults) > 100 and len(ref.failed_calls) > 5
    assert comparable(got) == comparable(ref)


def test_kill_while_writing_keeps_the_previous_checkpoint(tmp_path):
    d = tmp_path / "ck"
    script = f"""
import sys, time
sys.path.insert(0, {os.path.join(ROOT, 'src')!r})
import fastnuma as fn
from fastnuma import checkpoint
write = checkpoint._write_member
def slow(*a):                     # a slow disk: the parent kills us mid-snapshot
    if checkpoint._snapshots({str(d)!r}):
        time.sleep(0.2)
    return write(*a)
checkpoint._write_member = slow
sim = fn.Simulator(fn.Topology.uniform(nodes=2, cpus_per_node=4), numa_balancing=1)
sim.replay({NUMA01!r}, checkpoint={str(d)!r}, checkpoint_every=1000)
"""
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:      # the second snapshot is being written
            tmps = [n for n in os.listdir(d) if n.startswith(".tmp-snap-")] \
                if (d / "CURRENT").exists() else []
            if tmps and os.path.exists(d / tmps[0] / "arrays.npz") and \
                    os.path.getsize(d / tmps[0] / "arrays.npz") > 0:
                break
            assert proc.poll() is None, "the writer ended before it could be killed"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert any(n.startswith(".tmp-snap-") for n in os.listdir(d))   # killed mid-write
    assert checkpoint.info(d)["replay"]["rows"] == 1000
    sim = fn.Simulator.load(d)
    got = sim.replay(resume=True, checkpoint=False)
    ref = fn.Simulator(fn.Topology.uniform(nodes=2, cpus_per_node=4),
                       numa_balancing=1).replay(NUMA01)
    assert comparable(got) == comparable(ref)


def test_pickling_round_trips(tmp_path):
    pytest.importorskip("distributed")
    from distributed.protocol import deserialize_bytes, serialize_bytes
    t = table(random_program(2))
    sim = fn.Simulator(topo(), **KNOBS)
    sim.replay(t.slice(0, 800))
    clones = [pickle.loads(pickle.dumps(sim, protocol=5)),     # what Dask sends: bytes
              deserialize_bytes(serialize_bytes(sim, serializers=("pickle",)))]
    for clone in clones:
        assert machine_state(clone) == machine_state(sim)
    rest = [comparable(s.replay(t.slice(800))) for s in clones + [sim]]
    assert rest[0] == rest[1] == rest[2]
    assert [machine_state(c) for c in clones] == [machine_state(sim)] * 2
    report = fn.Simulator(topo(), **KNOBS).replay(t, epoch_events=100)
    again = pickle.loads(pickle.dumps(report))
    assert comparable(again) == comparable(report) and again.summary() == report.summary()
    # a simulator loaded from a replay checkpoint pickles with its pending replay
    ref = comparable(fn.Simulator(topo(), **KNOBS).replay(t))
    try:
        fn.Simulator(topo(), **KNOBS).replay(t, checkpoint=tmp_path / "ck", checkpoint_every=500,
                                              progress=lambda rows: (_ for _ in ()).throw(Stop))
    except Stop:
        pass
    moved = pickle.loads(pickle.dumps(fn.Simulator.load(tmp_path / "ck")))
    assert comparable(moved.replay(t, resume=True, checkpoint=False)) == ref


def test_new_machine_arrays_and_fields_are_saved(tmp_path):
    """Enumeration, not a list: what another module adds to the machine is saved."""
    sim = fn.Simulator(topo())
    pid = sim.spawn()
    sim.access(pid, sim.mmap(pid, 1 << 20) + 4096 * np.arange(256), write=True)
    sim.machine.tier_demotions = np.arange(7, dtype=np.int32)
    sim.machine.tier_name = ("dram", 3, {1: [2.5]})
    sim.machine.alias = sim.machine.vm                     # shared arrays stay shared
    sim.save(tmp_path / "s")
    back = fn.Simulator.load(tmp_path / "s")
    assert back.machine.tier_demotions.tolist() == list(range(7))
    assert back.machine.tier_name == ("dram", 3, {1: [2.5]})
    assert back.machine.alias is back.machine.vm is back.st.vm
    assert machine_state(back) == machine_state(sim)
    sim.machine.hook = lambda: None
    with pytest.raises(CheckpointError, match=r"machine\['hook'\].*function"):
        sim.save(tmp_path / "t")
    assert not (tmp_path / "t").exists() or not os.path.exists(tmp_path / "t" / "CURRENT")


def _snapshot(d):
    return d / json.loads((d / "CURRENT").read_text())["snapshot"]


def test_refusals_are_one_line(tmp_path):
    t = table(random_program(3))
    d = tmp_path / "ck"
    try:
        fn.Simulator(topo()).replay(t, checkpoint=d, checkpoint_every=500,
                                    progress=lambda rows: (_ for _ in ()).throw(Stop))
    except Stop:
        pass
    # another trace
    other = table(random_program(5))
    with pytest.raises(CheckpointError, match="taken on another trace"):
        fn.Simulator.load(d).replay(other, resume=True)
    # nothing to resume; a stream cannot be fingerprinted
    with pytest.raises(ValueError, match="nothing to resume"):
        fn.Simulator(topo()).replay(t, resume=True)
    with pytest.raises(ValueError, match="RecordBatchReader"):
        fn.Simulator(topo()).replay(pa.RecordBatchReader.from_batches(t.schema, t.to_batches()),
                                    checkpoint=tmp_path / "x", checkpoint_every=10)
    # a corrupt array
    npz = _snapshot(d) / "arrays.npz"
    data = bytearray(npz.read_bytes())
    good = bytes(data)
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match its checksum") as e:
        fn.Simulator.load(d)
    assert "\n" not in str(e.value)
    npz.write_bytes(good[:len(good) // 2])                  # truncated
    with pytest.raises(CheckpointError, match="ck"):
        fn.Simulator.load(d)
    npz.write_bytes(good)
    # a corrupt manifest, another fastnuma version
    man = _snapshot(d) / "manifest.json"
    text = man.read_text()
    man.write_text(text.replace('"kind":"replay"', '"kind":"replaz"'))
    with pytest.raises(CheckpointError, match="manifest.json does not match its checksum"):
        fn.Simulator.load(d)
    old = text.replace(f'"fastnuma_version":"{fn.__version__}"', '"fastnuma_version":"0.0.1"')
    man.write_text(old)
    cur = json.loads((d / "CURRENT").read_text())
    import hashlib
    cur["manifest_sha256"] = hashlib.sha256(old.encode()).hexdigest()
    (d / "CURRENT").write_text(json.dumps(cur))
    with pytest.raises(CheckpointError, match="written by fastnuma 0.0.1; this is fastnuma"):
        fn.Simulator.load(d)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        fn.Simulator.load(tmp_path / "missing")


def test_cli_checkpoint_then_resume_writes_the_same_report(tmp_path, capsys):
    d, r1, r2 = tmp_path / "ck", tmp_path / "r1", tmp_path / "r2"
    base = ["--numa-balancing", "1", "--topology", "two_socket", "--epoch", "250ms"]
    assert main(["replay", NUMA01, *base, "--checkpoint", str(d), "--checkpoint-every",
                 "3K", "--batch-rows", "1000", "--out", str(r1), "--no-progress"]) == 0
    first = capsys.readouterr().out
    assert checkpoint.info(d)["replay"]["rows"] == 6000      # 8000 rows: the last at 6K
    assert main(["replay", "--resume", str(d), "--out", str(r2), "--no-progress"]) == 0
    again = capsys.readouterr().out
    assert first.replace(str(r1), "") == again.replace(str(r2), "")
    for name in sorted(os.listdir(r1)):
        if name.endswith(".parquet"):
            assert pq.read_table(r1 / name).equals(pq.read_table(r2 / name)), name
    one, two = (json.loads((r / "summary.json").read_text()) for r in (r1, r2))
    for s in (one, two):               # when and how the command ran: not the run's result
        s.get("provenance", {}).pop("created", None)
        s.get("provenance", {}).pop("command", None)
    assert one == two
    assert main(["replay", "--resume", str(d), "--numa-balancing", "0"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "resumed replay takes its machine" in err
    assert main(["replay", NUMA01, "--checkpoint", str(d)]) == 1
    assert "--checkpoint-every" in capsys.readouterr().err
    assert main(["replay", "--resume", str(tmp_path / "nope")]) == 1
    assert capsys.readouterr().err.startswith("fastnuma: error: checkpoint")


@pytest.mark.parametrize("text, value", [("100M", 100_000_000), ("5k", 5000), ("2G", 2 * 10**9),
                                         ("1_000", 1000), ("7", 7)])
def test_parse_count(text, value):
    assert parse_count(text, "--checkpoint-every") == value


@pytest.mark.parametrize("text", ["0", "-5", "1.5M", "M", "10X", ""])
def test_parse_count_rejects(text):
    with pytest.raises(ValueError, match="--checkpoint-every"):
        parse_count(text, "--checkpoint-every")


def test_what_if_options_resume_identically(tmp_path):
    """A numactl task policy, a CPU map (its thread table) and the heat sampler are part
    of the replay's state."""
    kw = dict(task_policy="interleave:all", cpu_map="spread", heat_buckets=8,
              epoch_events=1000)

    def make():
        return fn.Simulator(fn.Topology.uniform(nodes=2, cpus_per_node=4), **SCAN)
    ref_sim = make()
    ref = ref_sim.replay(NUMA01, **kw)
    sim, got, seen = interrupted(make, NUMA01, [2500], every=777, batch_rows=500,
                                 tmp_path=tmp_path, **kw)
    assert ref.heat is not None
    assert comparable(got) == comparable(ref)
    assert machine_state(sim) == machine_state(ref_sim)
    assert [r for r, _ in seen] == [2331]
