"""The current data summarised on a Dask cluster, one task per partition file: the same summary as one pass.

For data beyond one machine (``mlops-nb monitor --executor dask --scheduler ADDRESS``). The workers read the
files themselves (the paths must reach them: a shared file system), so only summaries travel:

1. each file's row count (Parquet: from its footer), so every file knows the data's row where it starts;
2. per file, a :class:`~mlops_nb.monitoring.current.CurrentData` started at that row, read in chunks
   conformed to the first file's columns, its counts taken over every row (:meth:`CurrentData.counted`);
3. the summaries merged pairwise on the workers, in file order (:meth:`CurrentData.merge`): counts add up,
   samples keep the rows a one-pass sample keeps. Only the final summary (counts and at most ``sample_rows``
   sampled rows) comes back.

KS, PSI, chi-squared and the validation counts are exact integers, so they equal the local ones exactly;
Wasserstein is computed from the very same sampled values. Dask is imported only here, when asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlops_nb.exceptions import UsageError
from mlops_nb.monitoring import data as data_io
from mlops_nb.monitoring.current import SAMPLE_ROWS, CurrentData
from mlops_nb.monitoring.profile import Reference, feed

INSTALL = 'pip install "mlops-nb[dask]"'


def client(scheduler: str, timeout: str = "30s") -> Any:
    """A Dask client of the scheduler at ``scheduler`` (``tcp://host:8786``); UsageError naming the fix."""
    try:
        from distributed import Client
    except ImportError as e:
        raise UsageError(f"--executor dask needs Dask's distributed scheduler: {INSTALL}") from e
    try:
        return Client(scheduler, timeout=timeout)
    except (OSError, ValueError, TypeError) as e:
        raise UsageError(
            f"--scheduler {scheduler}: cannot reach a Dask scheduler there ({e}). Start one (dask scheduler) and "
            "workers (dask worker ADDRESS), and give its address, e.g. tcp://10.0.0.5:8786."
        ) from e


def row_count(file: str, fmt: str) -> int:
    """The rows of one file (Parquet: read from its footer, no data)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return int(pq.ParquetFile(file).metadata.num_rows)
        except OSError as e:
            raise UsageError(f"{file}: cannot read it as parquet ({e}). Check the file.") from e
    return sum(batch.num_rows for batch in data_io.batches(file))


def summarise_file(reference: Reference, file: str, offset: int, schema: Any, sample_rows: int) -> CurrentData:
    """One file's summary, its rows numbered from ``offset``, ready to merge."""
    summary = CurrentData(reference, sample_rows, offset=offset)
    feed(summary.add, (data_io.conform(batch, schema) for batch in data_io.batches(file)))
    return summary.counted()


def merge(earlier: CurrentData, later: CurrentData) -> CurrentData:
    return earlier.merge(later)


def summarise(
    reference: Reference, path: str | Path, scheduler: str | Any, sample_rows: int = SAMPLE_ROWS
) -> CurrentData:
    """The summary of the data at ``path`` (a folder, glob or file of partitions), computed on the cluster.

    Args:
        reference: the reference to compare with (sent to the workers once).
        path: partition files, read by the workers.
        scheduler: the scheduler's address, or a ``distributed.Client``.
        sample_rows: current rows kept for Wasserstein (all of them up to this many).

    Raises:
        UsageError: no Dask, an unreachable scheduler, unreadable files, or no rows.
    """
    found, fmt = data_io.files(path)
    first = next(iter(data_io.batches(found[0], batch_rows=1)), None)
    dask = client(scheduler) if isinstance(scheduler, str) else scheduler
    try:
        files = [str(p.resolve()) for p in found]
        counts = dask.gather(dask.map(row_count, files, fmt=fmt, pure=False))
        if first is None or not sum(counts):
            raise UsageError(f"{path}: no rows to read. Give data with at least one row.")
        offsets = [sum(counts[:i]) for i in range(len(counts))]
        ref = dask.scatter(reference, broadcast=True)
        parts = dask.map(
            summarise_file, [ref] * len(files), files, offsets, schema=first.schema, sample_rows=sample_rows, pure=False
        )
        while len(parts) > 1:  # pairwise, in file order, on the workers
            pairs = [dask.submit(merge, a, b, pure=False) for a, b in zip(parts[::2], parts[1::2], strict=False)]
            parts = pairs + ([parts[-1]] if len(parts) % 2 else [])
        summary: CurrentData = parts[0].result()
    finally:
        if isinstance(scheduler, str):
            dask.close()
    summary.finish()
    return summary
