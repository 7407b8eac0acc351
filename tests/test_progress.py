"""Progress: log lines on a non-terminal stream, tqdm on a pseudo-terminal, the compile
notice; the shell-facing outputs of the command line (--version, --format, convert)."""
import io
import json
import os
import pty
import re
import select

import pytest

from fastnuma.cli import main
from fastnuma.progress import Progress

TRACES = os.path.join(os.path.dirname(__file__), os.pardir, "traces")


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_log_lines_when_not_a_terminal():
    out, clock = io.StringIO(), Clock()
    p = Progress(1_000_000, out, clock=clock, interval=5.0)
    assert not p.tty
    clock.t += 60                       # compiling: the first batch comes late
    p(100_000)
    assert out.getvalue() == ""         # no rate from one point
    for k in range(2, 11):
        clock.t += 2.0
        p(100_000 * k)
    p.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 4              # 6, 12, 18 s after the first batch, and the end
    assert lines[0] == ("fastnuma: replay: 400,000/1,000,000 events (40.0%), 0.05 M events/s, "
                        "elapsed 1:06, ETA 0:12")
    assert "ETA" in lines[1] and "M events/s" in lines[1]
    assert lines[-1] == ("fastnuma: replay: 1,000,000/1,000,000 events (100.0%), "
                         "0.05 M events/s, elapsed 1:18, done")


def test_unknown_total_has_no_eta():
    out, clock = io.StringIO(), Clock()
    p = Progress(None, out, clock=clock, interval=1.0)
    p(10)
    clock.t += 2
    p(2_000_010)
    p.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "fastnuma: replay: 2,000,010 events, 1.00 M events/s, elapsed 0:02"
    assert lines[1].endswith("done") and "ETA" not in out.getvalue()


def test_tqdm_bar_on_a_pseudo_terminal():
    pytest.importorskip("tqdm")
    import fcntl
    import struct
    import termios
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a 120-column terminal
    stream = os.fdopen(slave, "w", buffering=1)
    try:
        p = Progress(5_000_000, stream)
        assert p.tty
        for k in range(1, 6):
            p(k * 1_000_000)
        p.close()
        stream.flush()
        data = b""
        # a pty hands the output over in pieces: read until nothing more comes
        while select.select([master], [], [], 0.5)[0]:
            chunk = os.read(master, 65536)
            if not chunk:
                break
            data += chunk
    finally:
        stream.close()
        os.close(master)
    text = data.decode()
    assert "\r" in text                                  # redrawn in place
    final = [s for s in re.split(r"[\r\n]+", text) if s.strip()][-1]
    assert "100%" in final and "5.00M/5.00M" in final    # the total, from the metadata
    assert re.search(r"\d+:\d\d<\d+:\d\d", final)         # elapsed<ETA
    assert "events/s" in final
    first = [s for s in re.split(r"[\r\n]+", text) if s.strip()][0]
    assert "1.00M/5.00M" in first and "?" in first    # no rate from a single point


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert re.match(r"fastnuma \d+\.\d+\.\d+ \(numba [\d.]+, numpy", capsys.readouterr().out)


def test_replay_formats(capsys):
    trace = os.path.join(TRACES, "lazy_4node.arrow")
    assert main(["replay", trace, "--format", "json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["vmstat"]["numa_pages_migrated"] == 384
    assert summary["provenance"]["trace"]["path"].endswith("lazy_4node.arrow")
    assert main(["replay", trace, "--format", "vmstat", "--quiet"]) == 0
    out = capsys.readouterr().out
    head, _, numastat = out.partition("\n\n")
    pairs = [line.split(" ") for line in head.splitlines()]
    assert all(len(p) == 2 and p[1].isdigit() for p in pairs)
    assert dict(pairs)["numa_pages_migrated"] == "384"
    lines = numastat.splitlines()
    assert lines[0] == "Per-node numastat info (in MBs):"
    assert lines[1].split() == ["Node", "0", "Node", "1", "Node", "2", "Node", "3", "Total"]
    hit = lines[3].split()
    assert hit[0] == "Numa_Hit" and float(hit[-1]) == pytest.approx(
        summary["vmstat"]["numa_hit"] * 4096 / 2**20, abs=0.005)
    assert len({len(line) for line in lines[1:]}) == 1        # columns aligned


def test_replay_progress_lines_on_stderr(capsys):
    assert main(["replay", os.path.join(TRACES, "lazy_4node.arrow")]) == 0
    err = capsys.readouterr().err
    assert err.startswith("fastnuma: replay: 6,000/6,000 events (100.0%)") and \
        err.endswith("done\n")


def test_convert_empty_input(tmp_path, capsys):
    src = tmp_path / "empty.txt"
    src.write_text("==123== Lackey\n")
    out = tmp_path / "e.arrow"
    assert main(["convert", "lackey", str(src), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fastnuma: error: ") and "no lackey records" in err
    assert sorted(os.listdir(tmp_path)) == ["empty.txt"]
    assert main(["convert", "lackey", str(src), "-o", str(out), "--allow-empty"]) == 0
    assert out.exists() and sorted(os.listdir(tmp_path)) == ["e.arrow", "empty.txt"]


def test_usage_errors_share_the_prefix(capsys):
    with pytest.raises(SystemExit):
        main(["replay", "x", "--format", "xml"])
    err = capsys.readouterr().err
    assert err.startswith("fastnuma: error: replay: argument --format") and \
        err.count("\n") == 1
