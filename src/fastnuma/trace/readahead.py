"""Readahead: a trace's next batches read on a second thread while the current one
replays (open_trace(..., read_ahead=True)).

Reading is most of a long replay's work on a compressed file: decompressing an lz4 IPC
file costs more than replaying its events (15.5 s of 1 billion sequential events, against
about 6 s of event loop, 2026-12-07). pyarrow decompresses, and the kernels replay, with
the GIL released, so on two cores the two overlap. open_trace's checks, derived columns
and the page faults of a mapped file's columns (trace/mapped.py) run on the reader thread
too: on an uncompressed file (a converted lackey trace) they are most of what the
replaying thread would do besides its event loop (xz's trace: 72 -> 55 ms with the
checks, against C's 46 ms; then 61-65 ms against 70-99 with the faults too, in a noisier
sitting); on a compressed one they lengthen the reader's part, which sets the pace
(1 billion sequential events: 19-25 s, against 18.6-20.5 s with the checks on the
replaying thread). The reader runs ``depth`` batches ahead at most, so
memory stays that of a few batches. open_trace starts it only once the first
READ_AHEAD_AFTER_ROWS rows are read and more follow (trace/reader.py): a small trace
replays faster without.

Errors keep their place: an error met while reading batch k+1 is raised by the ``next()``
that asks for batch k+1, after batch k has replayed, as it would be without readahead
(docs/api.md, streaming semantics). Warnings are raised by the reader thread when it meets
them (Python's warning filters are the process's).
"""
import queue
import threading

#: batches read ahead of the one replaying
DEFAULT_DEPTH = 2
#: batches alive at once under readahead: the one the caller holds, the ``DEFAULT_DEPTH``
#: queued and the one the reader thread is making
BATCHES_ALIVE = DEFAULT_DEPTH + 2
_END = object()


class readahead:
    """Iterate over ``batches`` (an iterator) with up to ``depth`` items read ahead on a
    daemon thread. ``close()`` (or leaving a ``with`` block, or the iterator being
    dropped) stops the reader and closes ``batches`` (its ``finally`` clauses run on the
    reader thread)."""

    def __init__(self, batches, depth=DEFAULT_DEPTH):
        self._items = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._read, args=(batches,), daemon=True,
                                        name="fastnuma-readahead")
        self._thread.start()

    def _read(self, batches):
        try:
            for item in batches:
                if not self._put((True, item)):
                    return
            self._put((True, _END))
        except BaseException as e:               # handed over in order, raised by next()
            self._put((False, e))
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()

    def _put(self, item):
        """Queue ``item`` unless the consumer has stopped; False if it has."""
        while not self._stop.is_set():
            try:
                self._items.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self):
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        ok, item = self._items.get()
        if ok and item is not _END:
            return item
        self._done = True
        self._thread.join()
        if not ok:
            raise item
        raise StopIteration

    def close(self):
        """Stop the reader and wait for it (it closes the source)."""
        self._done = True
        self._stop.set()
        self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if not self._done:
            self._stop.set()
