"""Trace weight and time: the count column (perf mem's sample period), convert lackey
--ns-per-event, and the command line's numactl options."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pytest

import fastnuma as fn
from fastnuma.cli import main
from fastnuma.trace import open_trace
from fastnuma.trace.info import read_schema

PERF = """# perf script header
  a.out  1234/1235  [003]  5051.123456789:  cpu/mem-loads,ldlat=30/P:  7f1234567000
  a.out  1234/1235  [003]  5051.123456800:  20011 cpu/mem-loads,ldlat=30/P:  7f1234568000
  a.out  1234/1236  [004]  5051.123456900:  5003 cpu/mem-stores/P:  7f1234569000
"""
LACKEY = "==1== Lackey\nI  0400d7d4,8\n L 0421fe00,8\n S 7ff000398,8\n M 0421fe00,4\n"


def test_perf_sample_period_becomes_count(tmp_path):
    src = tmp_path / "p.txt"
    src.write_text(PERF)
    assert main(["convert", "perf", str(src), "-o", str(tmp_path / "p.arrow")]) == 0
    t = feather.read_table(tmp_path / "p.arrow")
    assert t.column("count").to_pylist() == [1, 20011, 5003]
    assert t.schema.field("count").type == pa.uint32()


def test_lackey_ns_per_event_and_level(tmp_path):
    src = tmp_path / "l.txt"
    src.write_text(LACKEY)
    out = tmp_path / "l.arrow"
    assert main(["convert", "lackey", str(src), "-o", str(out), "--ns-per-event", "7"]) == 0
    t = feather.read_table(out)
    assert t.column("ts").to_pylist() == [0, 7, 14]
    gen = json.loads(read_schema(str(out)).metadata[b"fastnuma.trace.generator"])
    assert gen == {"converter": "lackey", "level": "instruction", "ns_per_event": 7}
    assert main(["convert", "lackey", str(src), "-o", str(out), "--ns-per-event", "0"]) == 1


def test_count_defaults_to_one_and_is_checked():
    t = pa.table({"addr": pa.array([4096, 8192], pa.uint64()),
                  "cpu": pa.array([0, 0], pa.uint16())})
    b = next(iter(open_trace(t)))
    assert b.count.tolist() == [1, 1] and b.count.dtype == np.uint32
    bad = t.append_column("count", pa.array([1, -2], pa.int64()))
    with pytest.raises(fn.TraceError) as e:
        next(iter(open_trace(bad)))
    assert (e.value.column, e.value.row, e.value.value) == ("count", 1, -2)


def test_cli_replay_numactl_flags(tmp_path, capsys):
    trace = "traces/zipf_4node.parquet"
    assert main(["replay", trace, "--topology", "two_socket", "--membind=1",
                 "--cpunodebind=0", "--cpu-map", "pack", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "N1=2,025" in out and "N0=" not in out.split("placement")[1]
    assert "est. memory stall" in out
    assert main(["replay", trace, "--topology", "two_socket", "--interleave=0-3",
                 "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "--interleave: 2 of '0-3'" in err
    with pytest.raises(SystemExit) as e:                          # one policy at a time
        main(["replay", trace, "--membind=0", "--interleave=1"])
    assert e.value.code == 2


def test_lackey_trace_turns_the_cache_filter_on(tmp_path):
    src = tmp_path / "l.txt"
    src.write_text(LACKEY)
    out = tmp_path / "l.arrow"
    assert main(["convert", "lackey", str(src), "-o", str(out)]) == 0
    cfg = fn.RunConfig.from_dict({"machine": {"preset": "two_socket"}})
    r = fn.run(cfg, str(out))
    # L 0421fe00 misses, S 7ff000398 misses, M 0421fe00 hits the line the load brought in
    assert r.cost["llc_filter"] and r.rows == 3 and r.cost["memory_accesses"] == 2
    off = fn.run(fn.RunConfig.from_dict({"machine": {"preset": "two_socket"},
                                         "cost": {"llc": "off"}}), str(out))
    assert not off.cost["llc_filter"] and off.cost["memory_accesses"] == 3
    with pytest.raises(TypeError, match="RecordBatchReader"):
        fn.run(cfg, pa.RecordBatchReader.from_batches(
            feather.read_table(out).schema, feather.read_table(out).to_batches()))
