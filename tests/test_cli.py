"""The command line: the demo prints its counters; bad input is one line and exit 1."""
import os
import subprocess
import sys

from fastnuma.cli import main


def test_demo_prints_the_counters(capsys):
    assert main(["demo", "--pages", "64"]) == 0
    out = capsys.readouterr().out
    assert "numa_hit" in out and "pgmigrate_success    48" in out
    assert "bind:3 anon=16 dirty=16 N3=16 kernelpagesize_kB=4" in out


def test_bad_pages_is_one_line_and_exit_1(capsys):
    assert main(["demo", "--pages", "3"]) == 1
    err = capsys.readouterr().err
    assert err == "fastnuma: error: --pages 3: expected 4..1048576\n"


def test_python_dash_m_runs_the_cli():
    r = subprocess.run([sys.executable, "-m", "fastnuma", "demo", "--pages", "8"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "numastat (per node):" in r.stdout


# ------------------------------------------------------------------ generate and info
import pytest  # noqa: E402



@pytest.mark.parametrize("ext", [".arrow", ".arrows", ".parquet"])
def test_generate_then_info(tmp_path, capsys, ext):
    out = tmp_path / f"t{ext}"
    assert main(["generate", "lazy", "--events", "1000", "--seed", "4", "-o", str(out),
                 "--nodes", "2", "--cpus-per-node", "2", "--pages", "64",
                 "--batch-rows", "100"]) == 0
    assert capsys.readouterr().out == f"wrote {out}: 1000 rows (scenario lazy, seed 4)\n"
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "rows:           1000 in " in text
    assert "distinct pages: 64 (256.0 KiB)" in text
    assert "format:         fastnuma trace v1" in text
    assert "MMAP 1, MBIND 1, SCHED 2" in text and '"scenario": "lazy"' in text
    assert "address span:   0x600000000000 .. " in text


def test_generate_bare_and_scenario_options(tmp_path, capsys):
    out = tmp_path / "z.parquet"
    assert main(["generate", "zipf", "--events", "500", "-o", str(out), "--exponent", "1.5",
                 "--bare", "--threads", "3"]) == 0
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "schema:         addr: uint64, cpu: uint16" in text and "READ 500" in text
    assert "no ts column" in text


@pytest.mark.parametrize("argv, message", [
    (["info", "{tmp}/missing.arrow"], "no such trace file"),
    (["info", "{tmp}/bad.arrow"], "truncated or corrupt trace file"),
    (["info", "{tmp}/bad.txt"], "unknown trace file type"),
    (["generate", "lazy", "--events", "5", "-o", "{tmp}/t.arrow"], "too few"),
    (["generate", "uniform", "--events", "50", "-o", "{tmp}/t.csv"], "extension"),
    (["generate", "uniform", "--events", "50", "-o", "{tmp}/no/t.arrow"], "no such directory"),
    (["generate", "uniform", "--events", "50", "--lag", "3", "-o", "{tmp}/t.arrow"],
     "no parameter 'lag'"),
    (["generate", "prodcons", "--events", "50", "--nodes", "1", "-o", "{tmp}/t.arrow"],
     "nodes >= 2"),
])
def test_bad_input_is_one_line_and_exit_1(tmp_path, capsys, argv, message):
    (tmp_path / "bad.arrow").write_bytes(b"ARROW1\0\0 not really")
    (tmp_path / "bad.txt").write_text("addr,cpu\n")
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("fastnuma: error: ") and message in captured.err
    assert sorted(os.listdir(tmp_path)) == ["bad.arrow", "bad.txt"]   # nothing written


@pytest.mark.parametrize("argv", [
    ["generate", "nosuch", "--events", "5", "-o", "t.arrow"],
    ["generate", "lazy", "--events", "many", "-o", "t.arrow"],
    ["generate", "lazy", "-o", "t.arrow"],
    ["info"],
])
def test_bad_arguments_are_one_line_and_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fastnuma") and ": error: " in err


def test_failed_generate_keeps_the_existing_file(tmp_path, capsys):
    out = tmp_path / "t.arrow"
    assert main(["generate", "uniform", "--events", "100", "-o", str(out)]) == 0
    before = out.read_bytes()
    assert main(["generate", "uniform", "--events", "100", "-o", str(out),
                 "--compression", "nosuchcodec"]) == 1
    assert out.read_bytes() == before and os.listdir(tmp_path) == ["t.arrow"]
    assert capsys.readouterr().err.count("\n") == 1


# ------------------------------------------------------------------ replay and convert
TRACES = os.path.join(os.path.dirname(__file__), os.pardir, "traces")


def test_replay_bundled_lazy_trace_prints_and_writes(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["replay", os.path.join(TRACES, "lazy_4node.arrow"), "--out", str(out),
                 "--epoch", "1000"]) == 0
    text = capsys.readouterr().out
    assert "uniform (from the trace): 4 nodes" in text
    assert "numa_pages_migrated     384" in text and "N0=128  N1=128  N2=128  N3=128" in text
    assert (out / "summary.json").exists() and (out / "epochs.parquet").exists()


def test_replay_epoch_in_time_and_balancing(tmp_path, capsys):
    assert main(["replay", os.path.join(TRACES, "numa01_2node.arrows"), "--epoch", "250ms",
                 "--numa-balancing", "1", "--topology", "two_socket"]) == 0
    text = capsys.readouterr().out
    assert "two_socket: 2 nodes" in text and "numa_hint_faults" in text


@pytest.mark.parametrize("argv, message", [
    (["--epoch", "soon"], "--epoch 'soon'"),
    (["--topology", "nowhere"], "--topology 'nowhere'"),
])
def test_replay_bad_options_one_line(tmp_path, capsys, argv, message):
    out = tmp_path / "never"
    assert main(["replay", os.path.join(TRACES, "lazy_4node.arrow"), "--out", str(out)]
                + argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("fastnuma: error: ") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_replay_bad_trace_names_the_place_and_writes_nothing(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.ipc as ipc
    bad = tmp_path / "bad.arrow"
    t = pa.table({"addr": pa.array([4096, 8192], pa.uint64()),
                  "cpu": pa.array([0, 999], pa.uint16())})
    with ipc.new_file(bad, t.schema) as w:
        w.write_table(t)
    out = tmp_path / "out"
    assert main(["replay", str(bad), "--out", str(out), "--topology", "uniform"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "column 'cpu', row 1, value 999" in err
    assert str(bad) in err and not out.exists()


def test_convert_then_replay(tmp_path, capsys):
    src = tmp_path / "lackey.txt"
    src.write_text("I  04016830,3\n S 7ff000398,8\n L 7ff000390,4\n")
    out = tmp_path / "l.parquet"
    assert main(["convert", "lackey", str(src), "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out}: 2 events (from lackey {src})\n"
    assert main(["replay", str(out), "--topology", "uniform"]) == 0
    assert "implicit mappings       1" in capsys.readouterr().out
    assert main(["convert", "csv", str(tmp_path / "missing.csv"), "-o", str(out)]) == 1
    assert capsys.readouterr().err.startswith("fastnuma: error: ")


def _bad_trace(tmp_path, kind):
    import pyarrow as pa
    import pyarrow.ipc as ipc
    cols = {"addr": pa.array([4096, 8192, 12288], pa.uint64()),
            "cpu": pa.array([0, 1, 2], pa.uint16()),
            "ts": pa.array([0, 5, 9], pa.uint64()),
            "op": pa.array([0, 1, 0], pa.uint8())}
    expect = None
    if kind == "missing":
        del cols["cpu"]
        expect = "column 'cpu'"
    elif kind == "too_big":
        cols["cpu"] = pa.array([0, 70000, 1], pa.int32())
        expect = "column 'cpu', row 1, value 70000"
    elif kind == "backwards":
        cols["ts"] = pa.array([0, 9, 5], pa.uint64())
        expect = "column 'ts', row 2, value 5"
    elif kind == "unknown_op":
        cols["op"] = pa.array([0, 9, 0], pa.uint8())
        expect = "column 'op', row 1, value 9"
    path = tmp_path / f"{kind}.arrow"
    t = pa.table(cols)
    with ipc.new_file(path, t.schema) as w:
        w.write_table(t)
    if kind == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2])
        expect = "truncated or corrupt"
    return path, expect


@pytest.mark.parametrize("kind", ["missing", "too_big", "backwards", "unknown_op", "truncated"])
def test_replay_bad_input_one_line_names_the_place_nothing_written(tmp_path, capsys, kind):
    path, expect = _bad_trace(tmp_path, kind)
    out = tmp_path / "out"
    assert main(["replay", str(path), "--out", str(out), "--topology", "uniform"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fastnuma: error: ") and err.count("\n") == 1
    assert expect in err and str(path) in err
    assert not out.exists()
