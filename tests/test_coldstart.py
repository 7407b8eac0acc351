"""The cold-start notice: a Numba cache without the kernels (or caching off) is reported
at once, in one line on stderr, before anything compiles; a warm cache says nothing."""
import os

from fastnuma.cli import main
from fastnuma.kernels import cache

TRACES = os.path.join(os.path.dirname(__file__), "..", "traces")


def test_an_empty_cache_folder_is_cold(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("FASTNUMA_NUMBA_CACHE", raising=False)
    assert cache.cache_is_cold()
    notice = cache.cold_start_notice()
    assert notice.startswith("fastnuma: compiling the simulator's kernels")
    assert str(tmp_path) in notice and "\n" not in notice


def test_a_cache_holding_the_event_loop_is_warm(tmp_path, monkeypatch):
    # Numba's layout under NUMBA_CACHE_DIR: a folder per source folder, an index per kernel
    folder = tmp_path / "work_src_fastnuma_kernels"
    folder.mkdir()
    (folder / "events.run_events-101.py311.nbi").write_bytes(b"")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("FASTNUMA_NUMBA_CACHE", raising=False)
    assert not cache.cache_is_cold()
    assert cache.cold_start_notice() is None


def test_caching_off_is_always_cold(tmp_path, monkeypatch):
    (tmp_path / "events.run_events-101.py311.nbi").write_bytes(b"")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("FASTNUMA_NUMBA_CACHE", "0")
    assert cache.cache_is_cold()
    assert "FASTNUMA_NUMBA_CACHE=0" in cache.cold_start_notice()


def test_replay_prints_the_notice_first_on_a_cold_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "empty"))
    monkeypatch.delenv("FASTNUMA_NUMBA_CACHE", raising=False)
    assert main(["replay", os.path.join(TRACES, "lazy_4node.arrow"), "--no-progress"]) == 0
    out = capsys.readouterr()
    assert out.err.startswith("fastnuma: compiling the simulator's kernels")
    assert out.err.count("\n") == 1
    assert "numa_hint_faults" in out.out or "events" in out.out


def test_replay_says_nothing_on_a_warm_cache(tmp_path, monkeypatch, capsys):
    (tmp_path / "events.run_events-101.py311.nbi").write_bytes(b"")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("FASTNUMA_NUMBA_CACHE", raising=False)
    assert main(["replay", os.path.join(TRACES, "lazy_4node.arrow"), "--no-progress"]) == 0
    assert capsys.readouterr().err == ""
