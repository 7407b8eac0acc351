"""Progress of a replay on stderr, honest about what it knows.

On a terminal: a tqdm bar with the trace's total rows (from its metadata, when the files
say so cheaply), rate, elapsed time and ETA. The rate is measured from the first batch on
(tqdm's ``initial``), so the time Numba spends compiling before it does not show as an
absurd first rate. Elsewhere (CI, nohup, a pipe): one log line every ``interval``
seconds and a final line with the total. ``--quiet`` turns both off.

A cold kernel cache is announced before the replay starts
(fastnuma.kernels.cache.cold_start_notice).
"""
import sys
import time

LOG_INTERVAL_S = 5.0


def _hms(seconds):
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else \
        f"{s // 60}:{s % 60:02d}"


class Progress:
    """Callable as ``progress(rows_done)`` (Simulator.replay's hook); ``close()`` at the end.

    ``total``: rows of the trace or None; ``stream``: default stderr; ``tty``: force the
    terminal (True) or the log-line (False) mode, default ``stream.isatty()``;
    ``clock``: a seconds clock (tests pass their own)."""

    def __init__(self, total=None, stream=None, *, tty=None, interval=LOG_INTERVAL_S,
                 clock=time.monotonic, what="replay"):
        self.total, self.stream = total, stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval, self.clock, self.what = interval, clock, what
        self.t_start = clock()
        self.t0 = self.rows0 = None      # the first batch's time and rows: the rate's base
        self.rows = 0
        self.last_log = None
        self.bar = None

    def __call__(self, rows):
        now = self.clock()
        self.rows = rows
        if self.t0 is None:
            self.t0, self.rows0, self.last_log = now, rows, now
            if self.tty:
                try:
                    from tqdm import tqdm
                except ImportError:      # tqdm is optional (fastnuma[progress]): log lines
                    self.tty = False
                    return
                # initial=rows: the rate counts from here, not from the compile before it
                self.bar = tqdm(total=self.total, initial=rows, file=self.stream,
                                unit=" events", unit_scale=True, dynamic_ncols=True,
                                desc=self.what, mininterval=0.2, smoothing=0.1)
            return
        if self.bar is not None:
            self.bar.update(rows - self.bar.n)
        elif now - self.last_log >= self.interval:
            self.last_log = now
            self._log(now)

    def _log(self, now, final=False):
        rows = self.rows
        rate = (rows - self.rows0) / (now - self.t0) if now > self.t0 else None
        parts = [f"fastnuma: {self.what}: {rows:,}"
                 + (f"/{self.total:,} events ({100 * rows / self.total:.1f}%)"
                    if self.total else " events")]
        if rate:
            parts.append(f"{rate / 1e6:.2f} M events/s")
        parts.append(f"elapsed {_hms(now - self.t_start)}")
        if not final and rate and self.total and rows < self.total:
            parts.append(f"ETA {_hms((self.total - rows) / rate)}")
        if final:
            parts.append("done")
        self.stream.write(", ".join(parts) + "\n")
        self.stream.flush()

    def close(self):
        """The last line: the total and the time it took."""
        if self.bar is not None:
            self.bar.close()
        elif self.t0 is not None:
            self._log(self.clock(), final=True)
