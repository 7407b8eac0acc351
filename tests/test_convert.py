"""fastnuma.trace.convert: lackey, perf script and CSV to trace format v1, streamed."""
import pytest

from fastnuma.constants import OP_READ, OP_WRITE
from fastnuma.errors import TraceError
from fastnuma.trace import convert, open_trace

LACKEY = """==1234== Lackey, an example Valgrind tool
I  04016830,3
 S 7ff000398,8
 L 04222cac,4
 M 0421f434,4
I  04016833,5
==1234==
"""
PERF = """# captured on: ...
            a.out  1234/1235  [003]  5051.123456789:  cpu/mem-loads,ldlat=30/P:      7f1234567000
            a.out  1234/1236  [001]  5051.123457:          1 cpu/mem-stores/P:      7f1234568008
"""


def read(path):
    batches = list(open_trace(path))
    assert len(batches) == 1
    b = batches[0]
    return {k: getattr(b, k).tolist() for k in ("addr", "cpu", "op", "ts", "tid", "pid")}


@pytest.mark.parametrize("ext", [".arrow", ".arrows", ".parquet"])
def test_lackey(tmp_path, ext):
    src = tmp_path / "l.txt"
    src.write_text(LACKEY)
    out = tmp_path / f"l{ext}"
    assert convert.lackey(src, out) == 3
    t = read(out)
    assert t["addr"] == [0x7ff000398, 0x4222cac, 0x421f434]
    assert t["op"] == [OP_WRITE, OP_READ, OP_WRITE]
    assert t["ts"] == [0, 1, 2] and t["cpu"] == [0, 0, 0]
    assert convert.lackey(src, tmp_path / "i.arrow", instructions=True, cpu=3) == 5
    assert read(tmp_path / "i.arrow")["cpu"] == [3] * 5


def test_perf(tmp_path):
    src = tmp_path / "p.txt"
    src.write_text(PERF)
    assert convert.perf(src, tmp_path / "p.arrow") == 2
    t = read(tmp_path / "p.arrow")
    assert t == {"addr": [0x7f1234567000, 0x7f1234568008], "cpu": [3, 1], "op": [0, 1],
                 "ts": [5051123456789, 5051123457000], "tid": [1235, 1236],
                 "pid": [1234, 1234]}


def test_csv(tmp_path):
    src = tmp_path / "t.csv"
    src.write_text("addr,cpu,op,tid,comment\n0x1000,1,READ,5,a\n8192,2,write,5,b\n"
                   "0x3000,3,1,6,c\n")
    assert convert.csv(src, tmp_path / "t.parquet") == 3
    t = read(tmp_path / "t.parquet")
    assert t["addr"] == [0x1000, 0x2000, 0x3000] and t["op"] == [0, 1, 1]
    assert t["tid"] == [5, 5, 6] and t["cpu"] == [1, 2, 3]


def test_bad_input_names_the_place_and_writes_nothing(tmp_path):
    src = tmp_path / "bad.csv"
    src.write_text("addr,cpu\n0x1000,1\nzz,2\n")
    out = tmp_path / "bad.arrow"
    with pytest.raises(TraceError) as e:
        convert.csv(src, out)
    assert (e.value.column, e.value.row, e.value.value) == ("addr", 1, "zz")
    assert not out.exists()
    src.write_text("cpu\n1\n")
    with pytest.raises(TraceError) as e:
        convert.csv(src, out)
    assert e.value.column == "addr" and not out.exists()
    with pytest.raises(TraceError):
        convert.lackey(tmp_path / "missing.txt", out)
