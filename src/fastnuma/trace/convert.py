"""Converters to trace format v1, streamed: text is read in blocks, parsed by Arrow's
vectorised regex and numpy (never a Python loop per line), and written batch by batch.

Field mappings (what each format gives, and what the trace gets):

``lackey`` — Valgrind ``--tool=lackey --trace-mem=yes`` output, lines ``I  addr,size``
(instruction fetch), `` L addr,size`` (load), `` S addr,size`` (store), `` M addr,size``
(modify: a load then a store to the same address). Addresses are hexadecimal.
  L → op READ; S and M → op WRITE (M's load hits the page the store then dirties, so one
  write event is what the page table sees); I → skipped unless ``instructions=True``
  (then READ). Lackey records one thread and no CPU: ``cpu`` = ``tid`` = the ``cpu=``
  argument (default 0), ``pid`` 0, ``ts`` = the event's index x ``ns_per_event``
  (default 1 ns per access; lackey has no clock). Other lines (``==pid==`` messages) are
  skipped. The trace's generator metadata says ``"level": "instruction"``: the cost
  model's cache filter applies (docs/cost-model.md).

``perf`` — ``perf script -F comm,pid,tid,cpu,time,event,addr`` output of ``perf mem
record`` samples, lines such as
``  a.out  1234/1235  [003]  5051.123456789:  cpu/mem-loads,ldlat=30/P:  7f1234567000``
(an optional sample period before the event name, printed by ``-F ...,period,...``, is
kept as the ``count`` column: the sample stands for that many accesses; default 1).
  addr = the data address; cpu, pid, tid as printed; ts = time in ns (seconds x 10^9,
  the fraction's digits as printed); op = WRITE when the event name contains "store",
  else READ. Lines that do not match (headers, other events without an address) are
  skipped.

``csv`` — a CSV file with a header naming trace columns (addr, cpu, op, ts, tid, pid, len,
mode, nodemask, flags; others are ignored). Integers may be decimal or ``0x``
hexadecimal; ``op`` may also be a name (READ, WRITE, MMAP, MUNMAP, MBIND, SET_MEMPOLICY,
MOVE_PAGES, SCHED, MADVISE, any case).

Every converter returns the number of events written; the output is written whole or not
at all (TraceWriter), and bad input raises TraceError naming the file, line and value.
"""
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ..constants import (OP_MADVISE, OP_MBIND, OP_MMAP, OP_MOVE_PAGES, OP_MUNMAP, OP_READ,
                         OP_SCHED, OP_SET_MEMPOLICY, OP_WRITE)
from ..errors import TraceError
from .schema import COLUMNS
from .writer import TraceWriter

FORMATS = ("lackey", "perf", "csv")


class _Shown(str):
    """A bad input value as TraceError shows it: escaped, at most 40 characters."""

    def __repr__(self):
        return _shown(str(self))
BLOCK_BYTES = 16 << 20
OP_NAMES = {"READ": OP_READ, "WRITE": OP_WRITE, "MMAP": OP_MMAP, "MUNMAP": OP_MUNMAP,
            "MBIND": OP_MBIND, "SET_MEMPOLICY": OP_SET_MEMPOLICY,
            "MOVE_PAGES": OP_MOVE_PAGES, "SCHED": OP_SCHED, "MADVISE": OP_MADVISE}
_LACKEY = r"^(?P<kind>I|\s[LSM])\s+(?P<addr>[0-9a-fA-F]+),(?P<size>\d+)\s*$"
_PERF = (r"^\s*(?P<comm>.*?)\s+(?P<pid>\d+)/(?P<tid>\d+)\s+\[(?P<cpu>\d+)\]\s+"
         r"(?P<sec>\d+)\.(?P<frac>\d+):\s+(?:(?P<period>\d+)\s+)?(?P<event>\S+?):?\s+"
         r"(?P<addr>[0-9a-fA-F]+)\s*$")
_HEX = np.full(256, 255, np.uint8)
for _k, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _k
for _k, _c in enumerate(b"ABCDEF"):
    _HEX[_c] = 10 + _k


_U64_MAX_DEC = str((1 << 64) - 1).encode()


def _shown(value, limit=40):
    """A value for an error message: printable (repr escapes control bytes), short."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "...'"


def parse_uint(strings, base):
    """Vectorised unsigned parse of an Arrow string array (base 16, 10, or 0: decimal or
    0x-hexadecimal per value). Returns (uint64 values, index of the first bad one or -1)."""
    s = pc.utf8_trim_whitespace(strings)
    if base == 0:
        hexa = pc.starts_with(pc.utf8_lower(s), "0x").to_numpy(zero_copy_only=False)
        s = pc.if_else(pc.starts_with(pc.utf8_lower(s), "0x"), pc.utf8_slice_codeunits(s, 2), s)
    else:
        hexa = np.full(len(s), base == 16)
    lengths = pc.binary_length(s).to_numpy(zero_copy_only=False).astype(np.int64)
    width = int(lengths.max()) if len(lengths) else 0
    raw = np.asarray(s.to_numpy(zero_copy_only=False), dtype=f"S{max(width, 1)}")
    digits = raw.view(np.uint8).reshape(len(raw), max(width, 1))
    values = _HEX[digits]                                  # 255 for bad characters
    pos = np.arange(max(width, 1))
    valid = pos[None, :] < lengths[:, None]
    radix = np.where(hexa, 16, 10)[:, None]
    bad = ((values >= radix) & valid).any(axis=1) | (lengths == 0) | \
        (lengths > np.where(hexa, 16, 20))
    if width >= 20:                  # 20 decimal digits fit up to 2**64 - 1, no further
        bad |= ~hexa & (lengths == 20) & (raw > _U64_MAX_DEC)
    out = np.zeros(len(raw), np.uint64)
    for k in range(max(width, 1)):                         # per digit column, vectorised
        col = np.where(valid[:, k], values[:, k], 0).astype(np.uint64)
        step = valid[:, k]
        out = np.where(step, out * radix[:, 0].astype(np.uint64) + col, out)
    first = int(np.flatnonzero(bad)[0]) if bad.any() else -1
    return out, first


def _text_blocks(path):
    """Arrow string arrays of the file's lines, block by block."""
    opts = pacsv.ReadOptions(column_names=["line"], block_size=BLOCK_BYTES)
    parse = pacsv.ParseOptions(delimiter="\x1f", quote_char=False, escape_char=False,
                               newlines_in_values=False, ignore_empty_lines=False)
    conv = pacsv.ConvertOptions(column_types={"line": pa.string()}, strings_can_be_null=False)
    try:
        reader = pacsv.open_csv(path, read_options=opts, parse_options=parse,
                                convert_options=conv)
    except (OSError, pa.ArrowInvalid) as e:
        raise TraceError(f"cannot read {path}: {e}", path=str(path)) from None
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except pa.ArrowInvalid as e:
            raise TraceError(f"unreadable text: {_shown(str(e), 120)}", path=str(path)) \
                from None
        yield batch.column(0)


def lackey(path, out, *, cpu=0, instructions=False, ns_per_event=1, format=None, stats=None,
           allow_empty=False):
    """Valgrind lackey output → trace (see the module docstring). Returns events written.

    Lines that are neither records nor Valgrind's ``==pid==`` messages nor blank are
    malformed: they are skipped and counted, in ``stats`` (a dict, when given):
    ``skipped`` (lines) and ``first_skipped`` (1-based line number, or None). A file
    with no record at all is a TraceError, not an empty trace, unless ``allow_empty``."""
    if not isinstance(ns_per_event, int) or ns_per_event < 1:
        raise ValueError(f"ns_per_event {ns_per_event!r}: expected a positive int")
    n, line0, records, skipped, first = 0, 0, 0, 0, None
    gen = {"converter": "lackey", "level": "instruction", "ns_per_event": ns_per_event}
    with TraceWriter(out, format=format, generator=gen) as w:
        for lines in _text_blocks(path):
            m = pc.extract_regex(lines, _LACKEY)
            ok = pc.is_valid(m).to_numpy(zero_copy_only=False)
            other = ~ok & ~pc.starts_with(pc.utf8_trim_whitespace(lines), "==").to_numpy(
                zero_copy_only=False) & (pc.utf8_length(pc.utf8_trim_whitespace(lines))
                                         .to_numpy(zero_copy_only=False) > 0)
            if other.any():
                skipped += int(other.sum())
                if first is None:
                    first = line0 + int(np.flatnonzero(other)[0]) + 1
            line0 += len(lines)
            records += int(ok.sum())
            if not ok.any():
                continue
            kind = pc.utf8_trim_whitespace(pc.filter(pc.struct_field(m, "kind"), ok))
            keep = np.ones(len(kind), bool) if instructions else \
                pc.not_equal(kind, "I").to_numpy(zero_copy_only=False)
            if not keep.any():
                continue
            kind = pc.filter(kind, keep)
            addr, _ = parse_uint(pc.filter(pc.filter(pc.struct_field(m, "addr"), ok), keep), 16)
            op = np.where(pc.is_in(kind, pa.array(["S", "M"])).to_numpy(zero_copy_only=False),
                          OP_WRITE, OP_READ).astype(np.uint8)
            k = len(addr)
            w.write({"addr": addr, "cpu": np.full(k, cpu, np.uint16), "op": op,
                     "ts": np.arange(n, n + k, dtype=np.uint64) * np.uint64(ns_per_event)})
            n += k
        if not records and not allow_empty:
            raise TraceError("no lackey records (lines such as ' L 04222cac,4') in the "
                             "file: is it `valgrind --tool=lackey --trace-mem=yes` output?",
                             path=str(path))
    if stats is not None:
        stats.update(skipped=skipped, first_skipped=first)
    return n


def perf(path, out, *, format=None):
    """``perf script`` output of ``perf mem record`` samples → trace. Returns events."""
    n = 0
    with TraceWriter(out, format=format) as w:
        for lines in _text_blocks(path):
            m = pc.extract_regex(lines, _PERF)
            ok = pc.is_valid(m).to_numpy(zero_copy_only=False)
            if not ok.any():
                continue
            f = {name: pc.filter(pc.struct_field(m, name), ok)
                 for name in ("pid", "tid", "cpu", "sec", "frac", "event", "addr", "period")}
            cols = {}
            for name in ("pid", "tid", "cpu", "sec"):
                cols[name], _ = parse_uint(f[name], 10)
            addr, _ = parse_uint(f["addr"], 16)
            # nanoseconds from the fraction's first 9 digits, padded as printed
            frac, _ = parse_uint(pc.utf8_rpad(pc.utf8_slice_codeunits(f["frac"], 0, 9), 9,
                                              "0"), 10)
            ts = cols["sec"] * np.uint64(1_000_000_000) + frac
            store = pc.match_substring(pc.utf8_lower(f["event"]), "store")
            op = np.where(store.to_numpy(zero_copy_only=False), OP_WRITE, OP_READ)
            too_big = np.flatnonzero(cols["cpu"] > np.iinfo(np.uint16).max)
            if too_big.size:
                raise TraceError("CPU number out of range", path=str(path), column="cpu",
                                 value=int(cols["cpu"][too_big[0]]))
            # the sample period (when printed: -F ...,period,...) is how many accesses the
            # sample stands for; without it a sample counts once
            period = pc.if_else(pc.equal(f["period"], ""), "1", f["period"])
            count, _ = parse_uint(pc.fill_null(period, "1"), 10)
            big = np.flatnonzero(count > np.iinfo(np.uint32).max)
            if big.size:
                raise TraceError("sample period out of range", path=str(path),
                                 column="count", value=int(count[big[0]]))
            w.write({"addr": addr, "cpu": cols["cpu"].astype(np.uint16),
                     "op": op.astype(np.uint8), "ts": ts,
                     "tid": cols["tid"].astype(np.uint32), "pid": cols["pid"].astype(np.uint32),
                     "count": count.astype(np.uint32)})
            n += len(addr)
    return n


def csv(path, out, *, format=None):
    """CSV with named trace columns → trace. Returns events written."""
    opts = pacsv.ReadOptions(block_size=BLOCK_BYTES)
    try:
        reader = pacsv.open_csv(path, read_options=opts, convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in COLUMNS}))
    except (OSError, pa.ArrowInvalid) as e:
        raise TraceError(f"cannot read CSV: {e}", path=str(path)) from None
    names = [name for name in reader.schema.names if name in COLUMNS]
    for name in ("addr", "cpu"):
        if name not in names:
            raise TraceError("missing required column", path=str(path), column=name)
    n = 0
    with TraceWriter(out, format=format) as w:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except pa.ArrowInvalid as e:
                raise TraceError(f"bad CSV: {e}", path=str(path)) from None
            cols = {}
            for name in names:
                arr = batch.column(name)
                if name == "op":
                    upper = pc.utf8_upper(pc.utf8_trim_whitespace(arr))
                    named = pc.index_in(upper, pa.array(list(OP_NAMES)))
                    codes = pa.array(list(OP_NAMES.values()), pa.uint64())
                    by_name = pc.take(codes, pc.fill_null(named, 0)).to_numpy()
                    num, bad = parse_uint(pc.if_else(pc.is_valid(named), "0", arr), 0)
                    values = np.where(pc.is_valid(named).to_numpy(zero_copy_only=False),
                                      by_name, num)
                else:
                    values, bad = parse_uint(arr, 0)
                if bad >= 0:                 # row: of the trace; line: of the input
                    raise TraceError(f"not an unsigned integer below 2**64 at input line "
                                     f"{n + bad + 2}", path=str(path), column=name,
                                     row=n + bad, value=_Shown(arr[bad].as_py()))
                cols[name] = values
            w.write(cols)
            n += batch.num_rows
    return n


CONVERTERS = {"lackey": lackey, "perf": perf, "csv": csv}
