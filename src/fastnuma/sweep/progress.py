"""Progress of a sweep: a tqdm bar on a terminal, periodic log lines otherwise.

Both show combinations done (of which failed), running (on a worker now) and the time
left, estimated from the mean time per finished combination in this run.
"""
import logging
import sys
import time

log = logging.getLogger("fastnuma.sweep")


class SweepProgress:
    """``update(done, failed, running)`` after each result and every few seconds;
    ``close()`` at the end. ``bar``: None = tqdm when stderr is a terminal."""

    def __init__(self, total, *, bar=None, interval=10.0, stream=None):
        self.total, self.interval = total, interval
        self.stream = stream or sys.stderr
        self.t0 = time.monotonic()
        self.last_log = self.t0
        self.state = (0, 0, 0)
        self.logged = None
        if bar is None:
            bar = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.bar = None
        if bar:
            from tqdm import tqdm
            self.bar = tqdm(total=total, unit="replay", file=self.stream, dynamic_ncols=True)

    def eta(self, done):
        """Seconds left, or None before the first result."""
        if not done:
            return None
        return (time.monotonic() - self.t0) / done * (self.total - done)

    def line(self):
        done, failed, running = self.state
        eta = self.eta(done)
        left = "?" if eta is None else "{:02d}:{:02d}:{:02d}".format(
            int(eta) // 3600, int(eta) // 60 % 60, int(eta) % 60)   # hours may pass 24
        return (f"sweep: {done}/{self.total} done ({failed} failed), {running} running, "
                f"ETA {left}")

    def update(self, done, failed, running):
        self.state = (done, failed, running)
        now = time.monotonic()
        if self.bar is not None:
            self.bar.n = done
            self.bar.set_postfix_str(f"failed={failed} running={running}", refresh=False)
            self.bar.refresh()
        elif now - self.last_log >= self.interval:
            self.last_log = now
            self._log()

    def close(self):
        if self.bar is not None:
            self.bar.close()
        elif self.logged != self.state[:2]:
            self._log()

    def _log(self):
        self.logged = self.state[:2]
        log.info(self.line())
