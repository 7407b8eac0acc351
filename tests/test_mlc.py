"""Intel MLC parser on real published MLC outputs (tests/data/mlc_published: v3.5, v3.7,
v3.9 with a CXL expander, a v3.9a default run; sources in its README) and on synthetic
MLC-format files (tests/data/mlc, labelled there): a 2-socket Skylake-SP, a Sapphire
Rapids with a CXL expander, a 4-socket default run."""
from pathlib import Path

import numpy as np
import pytest

import fastnuma as fn
from fastnuma.mlc import parse_mlc, read_mlc, slit_from_latency

DATA = Path(__file__).parent / "data" / "mlc"
PUBLISHED = Path(__file__).parent / "data" / "mlc_published"


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


# ---------------------------------------------------------------- published captures
def test_published_v35_latency_and_bandwidth_matrices():
    """FD.io CSIT's Xeon 8180 server: MLC v3.5, space-aligned, a shell prompt line first."""
    lat = read_mlc(PUBLISHED / "csit_skx8180_2s_v3.5_latency_matrix.txt")
    assert list(lat) == ["latency"]
    assert lat["latency"].values.tolist() == [[81.3, 131.1], [131.2, 81.3]]
    bw = read_mlc(PUBLISHED / "csit_skx8180_2s_v3.5_bandwidth_matrix.txt")
    assert list(bw) == ["bandwidth"]
    assert np.allclose(bw["bandwidth"].values, [[108.0598, 50.9678], [50.8389, 108.2893]])
    # 10 x 131.1 / 81.3 = 16.1 -> 16: the measured SLIT, not the firmware's 21
    assert slit_from_latency(lat["latency"]) == [[10, 16], [16, 10]]


def test_published_v37_tab_separated_latency_matrix():
    """The SLIT blog post's machine: v3.7 prints tabs, with a trailing tab on each line."""
    text = (PUBLISHED / "slit_blog_2s_v3.7_latency_matrix.txt").read_text()
    assert "\t  78.5\t 119.4\t\n" in text
    m = parse_mlc(text)["latency"]
    assert m.values.tolist() == [[78.5, 119.4], [120.8, 76.6]]
    t = fn.Topology.from_mlc(text, node_pages=4096, cpus_per_node=24)
    # "the relative distance between node 0 and 1 is closer to 1.5": 10 x 119.4 / 78.5 =
    # 15.2 -> 15, 10 x 120.8 / 76.6 = 15.8 -> 16 (each row against its own local latency)
    assert t.distance == ((10, 15), (16, 10))
    assert [len(c) for c in t.node_cpus] == [24, 24]


def test_published_cxl_expander_is_a_cpu_less_node():
    """cxl-reskit's box: node 1 is a CXL expander, a column without a row; both matrices
    in one file (two MLC runs one after the other)."""
    path = PUBLISHED / "cxl_reskit_1s_cxl_v3.9_latency_and_bandwidth.txt"
    m = read_mlc(path)
    assert set(m) == {"latency", "bandwidth"}
    lat, bw = m["latency"], m["bandwidth"]
    assert lat.cpu_nodes() == [0] and lat.values[0].tolist() == [84.5, 564.5]
    assert np.isnan(lat.values[1]).all()
    assert np.allclose(bw.values[0], [30.5628, 4.7953])                # GB/s
    t = fn.Topology.from_mlc(path.read_text(), node_pages=1024, cpus_per_node=4)
    assert t.node_cpus == (tuple(range(4)), ())
    assert t.distance == ((10, 67), (67, 10))          # 10 x 564.5 / 84.5 = 66.8
    # the cost model reads the same file: latency row of node 0, bandwidth per node
    from fastnuma.costmodel import CostModel
    cm = CostModel(mlc_latency=str(path), mlc_bandwidth=str(path))
    assert cm.latency(t)[0].tolist() == [84.5, 564.5]
    assert np.allclose(cm.bandwidth(t), [30.5628, 4.7953])


def test_published_v39a_default_run_skips_other_sections():
    """A v3.9a run without options prints peak injection bandwidths, loaded latencies and
    cache-to-cache matrices ("Writer Numa Node ... -" entries) besides the two NUMA
    matrices: only the latency and bandwidth matrices are read."""
    m = read_mlc(PUBLISHED / "smt_2s_v3.9a_default_run.txt")
    assert set(m) == {"latency", "bandwidth"}
    assert m["latency"].values.tolist() == [[78.5, 134.8], [133.7, 79.2]]
    assert np.allclose(m["bandwidth"].values, [[111.388, 51.0857], [51.081, 111.5298]])


def test_published_files_are_verbatim_and_listed():
    """Every capture is named in the README with its source; no file was re-spaced (the
    tab-separated ones keep their tabs, the space-aligned ones have none)."""
    readme = (PUBLISHED / "README.md").read_text()
    files = sorted(p.name for p in PUBLISHED.glob("*.txt"))
    assert len(files) == 5
    for name in files:
        assert f"`{name}`" in readme, name
        text = (PUBLISHED / name).read_text()
        assert "Intel(R) Memory Latency Checker - v3." in text
        assert ("\t" in text) == ("v3.7" in name or "v3.9a" in name), name
