"""Sweeps: a grid of run configurations over traces, replayed on Dask (docs/sweep.md).

``load_grid(path)`` reads a grid file, ``Grid.combinations()`` expands it,
``run_combination(trace, params)`` turns one combination into one result row (no Dask
needed), and ``run_sweep(grid, output, client)`` runs a grid on a Dask cluster
(``connect()`` makes one) into a Parquet table, resuming where an earlier run stopped.
"""
from .grid import Grid, combination_key, load_grid, parse_grid  # noqa: F401
from .run import (estimate_memory, replay_combination, run_combination,  # noqa: F401
                  survey_trace)


def __getattr__(name):
    """Dask is an optional extra (fastnuma[sweep]): imported when the cluster part is."""
    if name in ("run_sweep", "connect", "local_cluster"):
        from . import cluster
        return getattr(cluster, name)
    raise AttributeError(f"module 'fastnuma.sweep' has no attribute {name!r}")
