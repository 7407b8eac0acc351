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
