"""Traces named by a URL (``s3://``, ``gs://``, ``hdfs://``, ``file://``...): opened through
pyarrow's filesystems as a RecordBatchReader, by whoever reads them (in a sweep, the worker
that replays the trace, never the scheduler). A URL names one file: ``.parquet``,
``.arrow``/``.feather`` (IPC file) or ``.arrows`` (IPC stream). Every call opens the file
afresh, so a reader that needs two passes (the replay, then the cost model's) calls twice.
"""
import os

import pyarrow as pa


def is_url(trace):
    """A string naming a trace by URL (``scheme://...``)."""
    return isinstance(trace, str) and "://" in trace


def _filesystem(url):
    import pyarrow.fs as pafs
    try:
        return pafs.FileSystem.from_uri(url)
    except (pa.ArrowInvalid, ValueError, OSError) as e:
        raise ValueError(f"{url}: cannot open this URL with pyarrow's filesystems ({e})") \
            from None


def open_url(url):
    """A RecordBatchReader over the trace file ``url`` names."""
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq
    fs, path = _filesystem(url)
    ext = os.path.splitext(path)[1]
    if ext not in (".parquet", ".arrow", ".feather", ".arrows"):
        raise ValueError(f"{url}: unknown trace file type (a URL names one .arrow, "
                         f".feather, .arrows or .parquet file)")
    try:
        if ext == ".parquet":
            f = pq.ParquetFile(fs.open_input_file(path))
            return pa.RecordBatchReader.from_batches(f.schema_arrow, f.iter_batches())
        if ext == ".arrows":
            return ipc.open_stream(fs.open_input_stream(path))
        r = ipc.open_file(fs.open_input_file(path))
        return pa.RecordBatchReader.from_batches(
            r.schema, (r.get_batch(i) for i in range(r.num_record_batches)))
    except FileNotFoundError:
        raise ValueError(f"{url}: no such trace file") from None


def url_chunks(url, size=1 << 20):
    """The file's bytes in chunks (its fingerprint)."""
    fs, path = _filesystem(url)
    try:
        with fs.open_input_stream(path) as f:
            while True:
                chunk = f.read(size)
                if not chunk:
                    return
                yield chunk
    except FileNotFoundError:
        raise ValueError(f"{url}: no such trace file") from None
