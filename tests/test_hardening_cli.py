"""Issue 18, the command line and the report's files: --out checked before the replay,
reports written as a set with the umask's modes, signals clean up, one-line errors for
hostile options, metadata and converter input."""
import json
import os
import signal
import stat
import subprocess
import sys
import time

import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

import fastnuma as fn
from fastnuma.cli import main
from fastnuma.errors import TraceError
from fastnuma.report import REPORT_FILES
from fastnuma.trace import convert
from tests.test_replay import lazy_events, table, topo

TRACES = os.path.join(os.path.dirname(__file__), os.pardir, "traces")
LAZY = os.path.join(TRACES, "lazy_4node.arrow")
SRC = os.path.join(os.path.dirname(__file__), os.pardir, "src")


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err
    assert err.startswith("fastnuma: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, (n, err)
    return err


def _report(n=16):
    return fn.Simulator(topo()).replay(table(lazy_events(n)), epoch_events=64)


# ------------------------------------------------------------------ 4. the report as a set
def test_report_files_take_the_umask_modes(tmp_path):
    old = os.umask(0o022)
    try:
        _report().write(tmp_path / "out")
    finally:
        os.umask(old)
    written = os.listdir(tmp_path / "out")
    assert "summary.json" in written and set(written) <= set(REPORT_FILES)
    for name in written:
        assert stat.S_IMODE(os.stat(tmp_path / "out" / name).st_mode) == 0o644, name
    assert stat.S_IMODE(os.stat(tmp_path / "out").st_mode) == 0o755


@pytest.mark.parametrize("fail_at", [1, 4, 8])
def test_failed_write_leaves_the_old_report_whole_and_no_temp_files(tmp_path, monkeypatch,
                                                                    fail_at):
    out = tmp_path / "out"
    _report(8).write(out)
    before = {n: (out / n).read_bytes() for n in os.listdir(out)}
    calls = []
    real = pq.write_table

    def failing(t, f, *a, **k):
        calls.append(1)
        if len(calls) == fail_at:
            raise OSError(28, "No space left on device")
        return real(t, f, *a, **k)
    monkeypatch.setattr(pq, "write_table", failing)
    with pytest.raises(OSError, match="No space"):
        _report(16).write(out)
    assert {n: (out / n).read_bytes() for n in os.listdir(out)} == before
    assert sorted(os.listdir(tmp_path)) == ["out"]            # no staging left behind


def test_interrupt_during_write_leaves_nothing_new(tmp_path, monkeypatch):
    out = tmp_path / "new"
    real = pq.write_table
    calls = []

    def interrupted(t, f, *a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(t, f, *a, **k)
    monkeypatch.setattr(pq, "write_table", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _report().write(out)
    assert os.listdir(tmp_path) == []


def test_rewrite_replaces_the_whole_set(tmp_path):
    out = tmp_path / "out"
    _report(8).write(out)
    first = sorted(os.listdir(out))
    r = _report(16)
    r.write(out)
    assert sorted(os.listdir(out)) == first and set(first) <= set(REPORT_FILES)
    assert json.loads((out / "summary.json").read_text())["rows"] == r.rows
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_report_refuses_a_directory_of_other_files(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a report's"):
        _report().write(tmp_path)
    assert os.listdir(tmp_path) == ["mine.txt"]


@pytest.mark.parametrize("case", ["file", "no-parent", "trace-dir", "others", "readonly"])
def test_out_is_checked_before_the_replay(tmp_path, capsys, monkeypatch, case):
    trace = tmp_path / "t" / "lazy.arrow"
    trace.parent.mkdir()
    trace.write_bytes(open(LAZY, "rb").read())
    out = {"file": tmp_path / "f", "no-parent": tmp_path / "a" / "b",
           "trace-dir": trace.parent, "others": tmp_path / "o",
           "readonly": tmp_path / "ro" / "out"}[case]
    if case == "file":
        out.write_text("x")
    elif case == "others":
        out.mkdir()
        (out / "notes.txt").write_text("x")
    elif case == "readonly":
        out.parent.mkdir()
        out.parent.chmod(0o555)
        if os.access(out.parent, os.W_OK):
            pytest.skip("running as root: permissions are not enforced")
    import fastnuma.engine
    monkeypatch.setattr(fastnuma.engine.Simulator, "replay",
                        lambda *a, **k: pytest.fail("the replay ran before --out was checked"))
    assert main(["replay", str(trace), "--out", str(out), "--no-progress"]) == 1
    _one_line_error(capsys, "--out")


def _default_sigint():
    """In the child: SIGINT back to its default, so that Python raises KeyboardInterrupt
    on it even when the test run itself ignores it (a job started in the background by a
    non-interactive shell inherits SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.skipif(sys.platform != "linux", reason="signals and /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_generate_leaves_no_temp_file(tmp_path, sig):
    out = tmp_path / "big.parquet"
    p = subprocess.Popen([sys.executable, "-m", "fastnuma", "generate", "uniform", "--events",
                          "400000000", "-o", str(out)], cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": os.path.abspath(SRC)},
                         stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    for _ in range(600):                     # until the writer's temp file exists
        if any(n.endswith(".tmp") for n in os.listdir(tmp_path)):
            break
        time.sleep(0.05)
    else:
        p.kill()
        pytest.fail("generate never started writing")
    # Under load about one SIGINT in 25 goes unanswered (the generator keeps writing; the
    # second works; cause not found, benchmarks/README.md "2026-12-07, later"): signal
    # again, as a user presses Ctrl-C again, at most three times.
    for attempt in range(3):
        p.send_signal(sig)
        try:
            err = p.communicate(timeout=40)[1]
            break
        except subprocess.TimeoutExpired:
            continue
    else:
        p.kill()
        pytest.fail(f"generate ignored {sig.name} three times")
    assert p.returncode == (143 if sig == signal.SIGTERM else 130), err
    assert "Traceback" not in err and err.strip() in ("fastnuma: terminated",
                                                      "fastnuma: interrupted")
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------ 7. options, metadata
@pytest.mark.parametrize("epoch", ["infms", "1e400s", "nanms", "-5ms", "1e30s",
                                   "99999999999999999999999"])
def test_hostile_epochs_are_one_line(tmp_path, capsys, epoch):
    assert main(["replay", LAZY, f"--epoch={epoch}", "--no-progress"]) == 1
    _one_line_error(capsys, "--epoch")


def test_convert_cpu_out_of_range(tmp_path, capsys):
    src = tmp_path / "l.txt"
    src.write_text(" L 04222cac,4\n")
    for cpu in ("-1", "65536"):
        assert main(["convert", "lackey", str(src), "-o", str(tmp_path / "x.arrow"),
                     "--cpu", cpu]) == 1
        _one_line_error(capsys, "--cpu")
    assert sorted(os.listdir(tmp_path)) == ["l.txt"]


def _with_topology_meta(tmp_path, meta):
    t = table(lazy_events(4))
    t = t.replace_schema_metadata({"fastnuma.trace.topology": meta})
    path = tmp_path / "m.arrow"
    with ipc.new_file(path, t.schema) as w:
        w.write_table(t)
    return path


@pytest.mark.parametrize("meta, needle", [
    ('{"preset": "from_sysfs", "path": "/etc"}', "unknown preset"),
    ('{"preset": "__init__"}', "unknown preset"),
    ('{"preset": "uniform", "node_distance": [[10]]}', "no argument"),
    ('{"preset": "uniform", "nodes": 1e9}', "nodes must be"),
    ('{"preset": "uniform", "nodes": 100000}', "nodes must be"),
    ('{"preset": "cxl", "cxl_pages": -1}', "cxl_pages must be"),
    ('[1, 2]', "not a JSON object"),
    ('{nope', "not JSON"),
])
def test_hostile_topology_metadata_is_refused(tmp_path, capsys, meta, needle):
    path = _with_topology_meta(tmp_path, meta)
    assert main(["replay", str(path), "--no-progress"]) == 1
    _one_line_error(capsys, needle, str(path))


def test_allowed_topology_metadata_still_works(tmp_path, capsys):
    path = _with_topology_meta(tmp_path, '{"preset": "uniform", "nodes": 4, '
                                         '"cpus_per_node": 2, "pages_per_node": 16384}')
    assert main(["replay", str(path), "--no-progress"]) == 0
    assert "uniform (from the trace): 4 nodes" in capsys.readouterr().out


def test_generate_format_must_match_the_extension(tmp_path, capsys):
    assert main(["generate", "uniform", "--events", "10", "--format", "parquet", "-o",
                 str(tmp_path / "x.arrow")]) == 1
    _one_line_error(capsys, "--format")
    assert os.listdir(tmp_path) == []


def test_generate_refuses_what_the_disk_cannot_hold(tmp_path, capsys):
    assert main(["generate", "uniform", "--events", str(1 << 60), "-o",
                 str(tmp_path / "x.arrow")]) == 1
    _one_line_error(capsys, "GiB free")
    assert os.listdir(tmp_path) == []


def test_cli_cut_stream_warns_and_strict_fails(tmp_path, capsys):
    from tests.test_hardening import _cut_after, _stream
    _stream(tmp_path / "t.arrows")
    cut = tmp_path / "cut.arrows"
    _cut_after(tmp_path / "t.arrows", cut, 2)
    assert main(["replay", str(cut), "--no-progress", "--topology", "uniform"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("fastnuma: warning: ") and "end-of-stream marker" in err
    assert main(["replay", str(cut), "--no-progress", "--strict", "--topology",
                 "uniform", "--out", str(tmp_path / "r")]) == 1
    _one_line_error(capsys, "end-of-stream marker", str(cut))
    assert not (tmp_path / "r").exists()
    assert main(["info", str(cut)]) == 0
    assert "end-of-stream marker" in capsys.readouterr().out


# ------------------------------------------------------------------ 7. convert
def test_convert_accepts_a_20_digit_uint64_and_refuses_2_64(tmp_path):
    src = tmp_path / "t.csv"
    src.write_text(f"addr,cpu,ts\n4096,0,{(1 << 64) - 1}\n")
    assert convert.csv(src, tmp_path / "ok.arrow") == 1
    t = ipc.open_file(str(tmp_path / "ok.arrow")).read_all()
    assert t.column("ts").to_pylist() == [(1 << 64) - 1]
    src.write_text(f"addr,cpu,ts\n4096,0,1\n4096,0,{1 << 64}\n")
    with pytest.raises(TraceError, match="input line 3") as e:
        convert.csv(src, tmp_path / "bad.arrow")
    assert (e.value.column, e.value.row) == ("ts", 1)
    assert not (tmp_path / "bad.arrow").exists()


def test_convert_error_does_not_echo_binary_garbage(tmp_path):
    src = tmp_path / "t.csv"
    src.write_bytes(b"addr,cpu\n" + b"\x01\x02\x1b[31m" + b"A" * 5000 + b",0\n")
    with pytest.raises(TraceError) as e:
        convert.csv(src, tmp_path / "x.arrow")
    msg = str(e.value)
    assert len(msg) < 300 and "\x1b" not in msg and "\x01" not in msg


def test_lackey_counts_malformed_lines_and_fails_when_nothing_is_read(tmp_path, capsys):
    src = tmp_path / "l.txt"
    src.write_text("==1== Lackey\n L 04222cac,4\n L zz,4\ngarbage\n\n S 1000,8\n")
    stats = {}
    assert convert.lackey(src, tmp_path / "a.arrow", stats=stats) == 2
    assert stats == {"skipped": 2, "first_skipped": 3}
    assert main(["convert", "lackey", str(src), "-o", str(tmp_path / "b.arrow")]) == 0
    err = capsys.readouterr().err
    assert "skipped 2 malformed lines (first: line 3)" in err
    src.write_text("this is not lackey output\nat all\n")
    with pytest.raises(TraceError, match="no lackey records"):
        convert.lackey(src, tmp_path / "c.arrow")
    assert not (tmp_path / "c.arrow").exists()


def test_progress_bar_error_names_the_file(tmp_path, capsys, monkeypatch):
    """With the progress bar on, a corrupt file's error still names it (the bar's row
    count no longer reads the file first and fails without its name)."""
    bad = tmp_path / "bad.arrow"
    bad.write_bytes(b"ARROW1\x00\x00garbage")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert main(["replay", str(bad), "--topology", "uniform"]) == 1
    err = capsys.readouterr().err
    assert "fastnuma: error: " in err and str(bad) in err and "Traceback" not in err
