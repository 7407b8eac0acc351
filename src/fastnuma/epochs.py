"""The report's time series, in arrays: one row per epoch.

``--epoch 1`` on a million events makes a million epochs; a Python tuple and a numpy
array per epoch took ~900 bytes each (903 MB). ``EpochLog`` keeps the columns in numpy
arrays that double when full (~80 bytes per epoch with 4 nodes) and still reads as the
sequence of tuples ``Report.epochs`` always was: ``(end_row, end_ns, accesses, remote,
remote_fraction, numa_hint_faults, numa_pages_migrated, pgmigrate_success, pages per
node)``.
"""
import numpy as np

from .dtypes import N_PGDEMOTE_DIRECT, N_PGDEMOTE_KSWAPD, N_PGPROMOTE_SUCCESS

COLUMNS = ("end_row", "end_ns", "accesses", "remote", "remote_fraction",
           "numa_hint_faults", "numa_pages_migrated", "pgmigrate_success")
# with memory tiering on, each epoch also counts the pages promoted and demoted (all nodes;
# docs/tiering.md §13), read from the per-node rows (dtypes N_*) handed in as node_rows
TIERING_COLUMNS = ("pgpromote_success", "pgdemote_kswapd", "pgdemote_direct")
_TIERING_ROWS = (N_PGPROMOTE_SUCCESS, N_PGDEMOTE_KSWAPD, N_PGDEMOTE_DIRECT)


class EpochLog:
    """Append-only epoch rows in growable arrays; a sequence of tuples to read."""

    def __init__(self, n_nodes, n_counters=0, capacity=64, node_rows=None):
        self._n = 0
        self._node_rows = node_rows
        self._tier_last = np.zeros(len(TIERING_COLUMNS), np.int64)
        self._tier = np.zeros((capacity if node_rows is not None else 0,
                               len(TIERING_COLUMNS)), np.int64)
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
            if self._node_rows is not None:
                self._tier = np.concatenate([self._tier, np.zeros_like(self._tier)])
        k = self._n
        if self._node_rows is not None:            # the tiering counters' epoch deltas
            now = self._node_rows[:, list(_TIERING_ROWS)].sum(axis=0)
            self._tier[k] = now - self._tier_last
            self._tier_last = now
        for c, v in zip(COLUMNS, (end_row, end_ns, accesses, remote, fraction, hints,
                                  migrated, moved)):
            self._cols[c][k] = v
        self._pages[k] = pages
        self._access[k] = access
        self._vm[k] = vm
        self._n += 1

    @property
    def end_rows(self):
        """int64 [epoch]: the row each epoch ends before (a view)."""
        return self._cols["end_row"][:self._n]

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
        if self._node_rows is not None:
            for j, c in enumerate(TIERING_COLUMNS):
                out[c] = self._tier[:self._n, j]
        for node in range(self._pages.shape[1]):
            out[f"pages_node{node}"] = self._pages[:self._n, node]
        return out
