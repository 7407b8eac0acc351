"""Intel MLC parser on MLC-format outputs (banner lines included) of several machines:
a 2-socket Skylake-SP, a Sapphire Rapids with a CXL expander, a 4-socket default run."""
from pathlib import Path

import numpy as np
import pytest

import fastnuma as fn
from fastnuma.mlc import parse_mlc, read_mlc, slit_from_latency

DATA = Path(__file__).parent / "data" / "mlc"


def test_two_socket_latency_and_bandwidth():
    lat = read_mlc(DATA / "skx_2s_latency.txt")
    assert list(lat) == ["latency"]
    assert lat["latency"].values.tolist() == [[82.4, 138.6], [137.8, 81.9]]
    bw = read_mlc(DATA / "skx_2s_bandwidth.txt")["bandwidth"]
    assert np.allclose(bw.values, [[115.0847, 34.2262], [34.2633, 115.3439]])  # GB/s


def test_cxl_node_is_a_column_without_a_row():
    m = read_mlc(DATA / "spr_cxl_latency.txt")["latency"]
    assert m.n_nodes == 3 and m.cpu_nodes() == [0, 1]
    assert np.isnan(m.values[2]).all() and m.values[1, 2] == 362.4
    t = fn.Topology.from_mlc((DATA / "spr_cxl_latency.txt").read_text(), node_pages=1024)
    assert t.node_cpus == (tuple(range(8)), tuple(range(8, 16)), ())
    # 10 x 198.5 / 112.1 = 17.7 -> 18; 271.8/112.1 -> 24; 362.4/111.6 -> 32; CXL row by symmetry
    assert t.distance == ((10, 18, 24), (18, 10, 32), (24, 32, 10))
    assert t.node_pages == (1024, 1024, 1024)


def test_default_run_holds_both_matrices_and_skips_peak_injection():
    m = read_mlc(DATA / "icx_4s_default_run.txt")
    assert set(m) == {"latency", "bandwidth"}
    assert m["latency"].values[2, 0] == 202.9
    assert m["bandwidth"].values.shape == (4, 4)
    assert m["bandwidth"].values[3, 3] == pytest.approx(100.8765)
    assert slit_from_latency(m["latency"])[0] == [10, 16, 23, 16]


def test_dash_entries_are_nan_and_errors_name_the_line():
    text = ("Measuring idle latencies (in ns)...\n\t\tNuma node\nNuma node\t0\t1\n"
            "       0\t  80.0\t   -\n       1\t 140.0\t  81.0\n")
    assert np.isnan(parse_mlc(text)["latency"].values[0, 1])
    with pytest.raises(ValueError, match=r"x.txt:4: 'abc' is not a number"):
        parse_mlc(text.replace("80.0", "abc"), "x.txt")
    with pytest.raises(ValueError, match="no MLC latency or bandwidth matrix"):
        parse_mlc("Intel(R) Memory Latency Checker - v3.9a\n", "y.txt")
    with pytest.raises(ValueError, match="no units line"):
        parse_mlc("Numa node\t0\t1\n0\t1\t2\n")
    with pytest.raises(ValueError, match=":4: row"):
        parse_mlc(text.replace("\t  80.0\t   -", "\t80.0"))


def test_run_config_machine_from_mlc_and_numactl(tmp_path):
    from fastnuma.runconfig import RunConfig
    (tmp_path / "m.txt").write_text((DATA / "icx_4s_default_run.txt").read_text())
    (tmp_path / "c.toml").write_text('[machine]\nmlc = "m.txt"\ncpus_per_node = 2\n'
                                     'node_pages = 4096\n')
    t = RunConfig.from_toml(tmp_path / "c.toml").topology()
    assert t.n_nodes == 4 and t.node_cpus[3] == (6, 7) and t.distance[0][2] == 23
    (tmp_path / "hw.txt").write_text(
        "available: 2 nodes (0-1)\nnode 0 cpus: 0 1\nnode 0 size: 64 MB\n"
        "node 1 cpus: 2 3\nnode 1 size: 64 MB\nnode distances:\nnode   0   1\n"
        "  0:  10  21\n  1:  21  10\n")
    (tmp_path / "d.toml").write_text('[machine]\nnumactl = "hw.txt"\n')
    t = RunConfig.from_toml(tmp_path / "d.toml").topology()
    assert t.node_pages == (16384, 16384) and t.distance[0][1] == 21
    (tmp_path / "e.toml").write_text('[machine]\nnumactl = "hw.txt"\npreset = "cxl"\n')
    with pytest.raises(ValueError, match="give one of"):
        RunConfig.from_toml(tmp_path / "e.toml").topology()
