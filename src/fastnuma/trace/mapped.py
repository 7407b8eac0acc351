"""Arrow IPC files and streams read from a read-only memory mapping: zero-copy batches,
the mapping's pages faulted in by the reading thread and given back behind the replay.

A batch's columns that the event loop reads are faulted in where the batch is checked:
on the reader thread once readahead runs, so that the replaying thread finds them mapped.
Resident memory stays that of a few batches whatever the file's size: once a batch's
pages can no longer be in use they are dropped (``MADV_DONTNEED``: they stay in the page
cache). "No longer in use" is counted in batches: at most ``BATCHES_ALIVE`` are held at
once (the caller's, those queued by readahead, the one being read), so the pages of
older batches go. Dropping the whole mapping after each batch would take away the pages
of the batches still queued, and the replaying thread would fault them in again (a fault
maps 16 pages at 0.37 us each: a third of what reading a lackey trace costs).

A compressed file's batches are decoded into memory of their own: its mapping is read
only while decoding, and dropped whole after each batch.
"""
import mmap
import os
from collections import deque

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from .readahead import BATCHES_ALIVE

PAGE = mmap.PAGESIZE
_CAN_DROP = hasattr(mmap, "MADV_DONTNEED")       # not on every platform (Windows)

#: decompress on the reading thread: readahead already keeps the second core busy, and
#: Arrow's pool would take both cores' time from the replay (more CPU for the same bytes)
_ONE_THREAD = ipc.IpcReadOptions(use_threads=False)
EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"


class _Mapping:
    """A file's read-only mapping, and the end of each batch read from it still mapped."""

    def __init__(self, path):
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                raise pa.ArrowInvalid("empty file")
            self.m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self.buffer = pa.py_buffer(self.m)
        self.kept = deque()           # end offsets of the batches still mapped, in order
        self.dropped = 0              # pages below this offset were dropped

    def read(self, batch):
        """``batch`` was read and the next is asked for: drop the pages of the batches
        BATCHES_ALIVE behind it."""
        if not _CAN_DROP:
            return
        end = self._end(batch)
        if end is None:                 # decoded into memory of its own: the mapping is spent
            self.m.madvise(mmap.MADV_DONTNEED)
            return
        self.kept.append(end)
        if len(self.kept) > BATCHES_ALIVE:
            upto = self.kept.popleft() // PAGE * PAGE  # a page shared with a newer batch stays
            if upto > self.dropped:
                self.m.madvise(mmap.MADV_DONTNEED, self.dropped, upto - self.dropped)
                self.dropped = upto

    def _end(self, batch):
        """The offset in the file where ``batch``'s buffers end, or None when they are not
        in the mapping (a compressed batch)."""
        lo, hi = self.buffer.address, self.buffer.address + self.buffer.size
        end = lo
        for column in batch.columns:
            for buf in column.buffers():
                if buf is None or not buf.size:
                    continue
                if not lo <= buf.address <= buf.address + buf.size <= hi:
                    return None
                end = max(end, buf.address + buf.size)
        return end - lo

    def close(self):
        self.buffer = None
        try:
            self.m.close()
        except BufferError:              # a batch still in use keeps the mapping alive
            pass


def file_batches(path):
    """An IPC file's record batches, from a memory mapping (no copy)."""
    mapping = _Mapping(path)
    try:
        reader = ipc.open_file(pa.BufferReader(mapping.buffer), options=_ONE_THREAD)
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i)
            yield batch
            mapping.read(batch)
    finally:
        mapping.close()


def stream_batches(path, on_cut):
    """An IPC stream's record batches, from a memory mapping as an IPC file's. pyarrow
    reads the end of the file as the end of the stream, so a stream cut between two
    batches would look complete: after the last batch the end-of-stream marker
    (0xFFFFFFFF then a zero length, or a zero length in the pre-1.0 format) must follow;
    ``on_cut(path)`` is called when it does not."""
    mapping = _Mapping(path)
    try:
        source = pa.BufferReader(mapping.buffer)
        reader = ipc.open_stream(source)
        end = source.tell()                       # where the last message read ends
        for batch in reader:
            end = source.tell()
            yield batch
            mapping.read(batch)
        m = mapping.m
        if m[end:end + 8] != EOS and m[end:end + 4] != EOS[4:]:
            on_cut(path)
    finally:
        mapping.close()


def prefault(batch, names):
    """Fault in the pages of ``batch``'s columns ``names`` (an Arrow record batch) now,
    one read per page: on the thread that checks the batch (the reader thread once
    readahead runs), so that the replaying one finds them mapped. Only columns whose
    buffer is a view into a larger one (the file's mapping) can have pages not yet
    mapped; a decoded batch's memory is resident already and is skipped."""
    present = batch.schema.names
    for name in names:
        if name in present:
            buf = batch.column(name).buffers()[1]
            if buf is not None and buf.size and buf.parent is not None:
                np.frombuffer(buf, np.uint8)[::PAGE].max()
