"""The report's time series, in arrays: one row per epoch.

``--epoch 1`` on a million events makes a million epochs; a Python tuple and a numpy
array per epoch took ~900 bytes each (903 MB). ``EpochLog`` keeps the columns in numpy
arrays that double when full (~80 bytes per epoch with 4 nodes) and still reads as the
sequence of tuples ``Report.epochs`` always was: ``(end_row, end_ns, accesses, remote,
remote_fraction, numa_hint_faults, numa_pages_migrated, pgmigrate_success, pages per
node)``.
"""
import numpy as np

COLUMNS = ("end_row", "end_ns", "accesses", "remote", "remote_fraction",
           "numa_hint_faults", "numa_pages_migrated", "pgmigrate_success")


class EpochLog:
    """Append-only epoch rows in growable arrays; a sequence of tuples to read."""

    def __init__(self, n_nodes, n_counters=0, capacity=64):
        self._n = 0
        self._cols = {c: np.zeros(capacity, np.float64 if c == "remote_fraction" else np.int64)
                      for c in COLUMNS}
        self._pages = np.zeros((capacity, n_nodes), np.int64)
        # per epoch: accesses [cpu node, memory node] and vmstat deltas (the cost model's
        # and the long epoch table's input)
        self._access = np.zeros((capacity, n_nodes, n_nodes), np.int64)
        self._vm = np.zeros((capacity, n_counters), np.int64)

    def append(self, end_row, end_ns, accesses, remote, fraction, hints, migrated, moved,
               pages, access=0, vm=0):
        if self._n == len(self._pages):
            for c, a in self._cols.items():
                self._cols[c] = np.concatenate([a, np.zeros_like(a)])
            self._pages = np.concatenate([self._pages, np.zeros_like(self._pages)])
            self._access = np.concatenate([self._access, np.zeros_like(self._access)])
            self._vm = np.concatenate([self._vm, np.zeros_like(self._vm)])
        k = self._n
        for c, v in zip(COLUMNS, (end_row, end_ns, accesses, remote, fraction, hints,
                                  migrated, moved)):
            self._cols[c][k] = v
        self._pages[k] = pages
        self._access[k] = access
        self._vm[k] = vm
        self._n += 1

    @property
    def access(self):
        """int64 [epoch, cpu node, memory node]: accesses in each epoch (a view)."""
        return self._access[:self._n]

    @property
    def vm(self):
        """int64 [epoch, counter]: vmstat deltas in each epoch, VMSTAT_NAMES order."""
        return self._vm[:self._n]

    def __len__(self):
        return self._n

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(self._n))]
        if k < 0:
            k += self._n
        if not 0 <= k < self._n:
            raise IndexError("epoch index out of range")
        row = tuple(float(self._cols[c][k]) if c == "remote_fraction" else
                    int(self._cols[c][k]) for c in COLUMNS)
        return row + (self._pages[k].copy(),)

    def __iter__(self):
        return (self[k] for k in range(self._n))

    def columns(self):
        """{column: array} of the epochs, pages_node<k> included (views, no copy)."""
        out = {c: a[:self._n] for c, a in self._cols.items()}
        for node in range(self._pages.shape[1]):
            out[f"pages_node{node}"] = self._pages[:self._n, node]
        return out
