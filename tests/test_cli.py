"""The command line: the demo prints its counters; bad input is one line and exit 1."""
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
