"""Reading the data to monitor: CSV, Parquet or JSON lines; one file, a folder or a glob of partitions.

Data is read with pyarrow in record batches and handed on in chunks of about :data:`CHUNK_BYTES`, so a file
larger than memory is fine. The format comes from the extension (``.csv``, ``.parquet``/``.pq``,
``.jsonl``/``.ndjson``/``.json``; a compressed ``.csv.gz`` too). A folder is read recursively, skipping hidden
and ``_``-prefixed files (``_SUCCESS``, ``.crc``). Every problem is a :class:`UsageError` naming the path
and the fix.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlops_nb.exceptions import UsageError

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "json", ".ndjson": "json", ".json": "json"}
COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")
CHUNK_BYTES = 32 << 20  # about 200,000 rows of 20 numbers: each is copied once more as NumPy arrays
BATCH_ROWS = 131_072
PARQUET_BUFFER = 1 << 20
FIX = "Give a CSV, Parquet or JSON lines file (.csv, .parquet, .jsonl), a folder of them or a glob ('data/*.parquet')."


def returning_allocator() -> None:
    """Have Arrow allocate with jemalloc, which gives freed memory back to the system; its default (mimalloc)
    keeps it for reuse: ~50 MB more peak memory for a monitor reading 1M x 20 Parquet, in 200,000-row chunks.

    Arrow reads the choice (``ARROW_DEFAULT_MEMORY_POOL``) once, when pyarrow loads, and Parquet's reader
    takes that default pool, so this works only before pyarrow is imported: a process's first step (the
    ``monitor`` command's). Nothing is changed when the user chose a pool, or off Linux (where pyarrow's
    wheels may lack jemalloc).
    """
    import os
    import sys

    if "pyarrow" in sys.modules or "ARROW_DEFAULT_MEMORY_POOL" in os.environ or not sys.platform.startswith("linux"):
        return
    os.environ["ARROW_DEFAULT_MEMORY_POOL"] = "jemalloc"


def format_of(path: Path) -> str | None:
    """The format of a file from its extension (``csv``, ``parquet``, ``json``), or None."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes = suffixes[:-1]
    return FORMATS.get(suffixes[-1]) if suffixes else None


def files(path: str | Path) -> tuple[list[Path], str]:
    """The files ``path`` names (a file, a folder, a glob) and their one format."""
    text = str(path)
    if any(c in text for c in "*?["):
        matches = glob.glob(text, recursive=True)  # noqa: PTH207 - Path.glob takes no absolute pattern
        found = sorted(Path(p) for p in matches if Path(p).is_file())
        if not found:
            raise UsageError(f"{text}: no file matches this pattern. {FIX}")
    else:
        target = Path(text)
        if target.is_dir():
            found = sorted(
                p
                for p in target.rglob("*")
                if p.is_file() and not any(part.startswith((".", "_")) for part in p.relative_to(target).parts)
            )
            found = [p for p in found if format_of(p)]
            if not found:
                raise UsageError(f"{text}: the folder holds no CSV, Parquet or JSON lines file. {FIX}")
        elif target.is_file():
            found = [target]
        else:
            raise UsageError(f"{text}: no such file or folder. {FIX}")
    formats = {format_of(p) for p in found}
    if None in formats:
        unknown = next(p for p in found if format_of(p) is None)
        raise UsageError(f"{unknown}: unknown data format (extension {unknown.suffix or 'none'!r}). {FIX}")
    if len(formats) > 1:
        raise UsageError(f"{text}: mixes formats ({', '.join(sorted(f for f in formats if f))}): give one format.")
    return found, formats.pop()  # type: ignore[return-value]


def batches(path: str | Path, batch_rows: int = BATCH_ROWS) -> Iterator[Any]:
    """The record batches of the data at ``path``, read lazily; empty batches skipped.

    Every batch has the first file's columns: a column a later file lacks comes as nulls (missing values),
    one it adds is left out (the first file says what the data is).
    """
    found, fmt = files(path)
    schema = None
    for batch in _parquet(found, batch_rows) if fmt == "parquet" else _dataset(found, fmt, batch_rows):
        if schema is None:
            schema = batch.schema
        if batch.num_rows:
            yield conform(batch, schema)


def _parquet(found: list[Path], batch_rows: int) -> Iterator[Any]:
    """Parquet files one after the other, without read-ahead: a third of the memory of a dataset scan."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for file in found:
        try:
            # read through a 1 MiB buffer per column: unbuffered, each column chunk would be read whole
            reader = pq.ParquetFile(file, pre_buffer=False, buffer_size=PARQUET_BUFFER)
            index = _pandas_index(reader.schema_arrow)
            columns = [n for n in reader.schema_arrow.names if n not in index] if index else None
            yield from reader.iter_batches(batch_size=batch_rows, use_threads=False, columns=columns)
        except (pa.ArrowException, OSError, ValueError) as e:
            raise UsageError(f"{file}: cannot read it as parquet ({_short(e)}). Check the file. {FIX}") from e


def _csv(found: list[Path], batch_rows: int) -> Iterator[Any]:
    """CSV files one after the other. Arrow types a column from the first rows it reads; a value further on
    that does not fit that type (``abc`` at row 399,002 of a column of numbers) stops its reader. The file is
    then read on from where it stopped with that column as text, the same as a file with that value early
    in it: the monitor reports a data problem, rather than refuse the whole file."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.dataset as ds

    for file in found:
        as_text: dict[str, Any] = {}
        done = 0
        while True:
            options = pcsv.ConvertOptions(column_types=as_text)
            dataset = _open(ds, [file], ds.CsvFileFormat(convert_options=options), str(file))
            seen = 0
            try:
                for batch in dataset.to_batches(batch_size=batch_rows, batch_readahead=2, fragment_readahead=1):
                    start, seen = max(0, done - seen), seen + batch.num_rows
                    if start < batch.num_rows:
                        yield batch.slice(start) if start else batch
                        done = seen
                break
            except pa.ArrowInvalid as e:
                column = _CONVERSION.match(str(e))
                if column is None or int(column[1]) >= len(dataset.schema):
                    raise UsageError(f"{file}: cannot read it as csv ({_short(e)}). Check the file. {FIX}") from e
                name = dataset.schema.names[int(column[1])]
                if name in as_text:
                    raise UsageError(f"{file}: cannot read it as csv ({_short(e)}). Check the file. {FIX}") from e
                as_text[name] = pa.string()
            except (pa.ArrowException, OSError, ValueError) as e:
                raise UsageError(f"{file}: cannot read it as csv ({_short(e)}). Check the file. {FIX}") from e


_CONVERSION = re.compile(r"In CSV column #(\d+): Row #\d+: CSV conversion error")


def _open(ds: Any, found: list[Path], fmt: Any, where: str) -> Any:
    import pyarrow as pa

    try:
        return ds.dataset([str(p) for p in found], format=fmt)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise UsageError(f"{where}: cannot read it ({_short(e)}). Check the file, or convert it. {FIX}") from e


def _pandas_index(schema: Any) -> set[str]:
    """The columns that hold a pandas DataFrame's index (``__index_level_0__``, or a named index), as
    ``DataFrame.to_parquet`` records them in the file's pandas metadata: the index, not data. pandas reads
    them back as the index; ``iter_batches`` would hand them on as columns."""
    try:
        meta = schema.pandas_metadata or {}
    except (TypeError, ValueError):  # metadata that is not pandas' JSON: no index to drop
        return set()
    return {name for name in meta.get("index_columns", []) if isinstance(name, str)}  # a RangeIndex is a dict


def _dataset(found: list[Path], fmt: str, batch_rows: int) -> Iterator[Any]:
    import pyarrow as pa
    import pyarrow.dataset as ds

    if fmt == "csv":
        yield from _csv(found, batch_rows)
        return
    where = str(found[0]) if len(found) == 1 else f"{found[0].parent} ({len(found)} files)"
    try:
        dataset = ds.dataset([str(p) for p in found], format=fmt)
        # Little read-ahead: Arrow's defaults (16 batches, 4 files) hold about 1 GB more on wide partitions
        # and read no faster on a machine that is also computing.
        yield from dataset.to_batches(batch_size=batch_rows, batch_readahead=2, fragment_readahead=1)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise UsageError(f"{where}: cannot read it as {fmt} ({_short(e)}). Check the file, or convert it. {FIX}") from e


def conform(batch: Any, schema: Any) -> Any:
    """``batch`` with the columns of ``schema``: a missing one as nulls, an extra one left out."""
    import pyarrow as pa

    if batch.schema.names == schema.names:
        return batch
    names = set(batch.schema.names)
    columns = [batch.column(f.name) if f.name in names else pa.nulls(batch.num_rows, f.type) for f in schema]
    return pa.RecordBatch.from_arrays(columns, names=schema.names)


def chunks(path: str | Path, chunk_rows: int | None = None) -> Iterator[Any]:
    """The data at ``path`` as Arrow tables of about ``chunk_rows`` rows (batches joined up to that size);
    by default as many rows as take :data:`CHUNK_BYTES` (at least one batch).

    Raises:
        UsageError: the path names nothing readable, or the data has no rows.
    """
    import pyarrow as pa

    pending: list[Any] = []
    held = 0
    rows = 0
    for batch in batches(path):
        if chunk_rows is None:  # from the first batch's width: wide data comes in fewer rows a chunk
            chunk_rows = max(1, CHUNK_BYTES * batch.num_rows // max(1, batch.nbytes))
        pending.append(batch)
        held += batch.num_rows
        if held >= chunk_rows:
            rows += held
            yield from _tables(pa, pending)
            pending, held = [], 0
    if pending:
        rows += held
        yield from _tables(pa, pending)
    if not rows:
        raise UsageError(f"{path}: no rows to read. Give data with at least one row.")


def _tables(pa: Any, pending: list[Any]) -> Iterator[Any]:
    """``pending`` as one table; as one table per run of batches of one schema when their types conflict
    (int64 in one partition, string in another): each is monitored as it is, and validation reports it."""
    try:
        yield pa.Table.from_batches(pending)
        return
    except pa.ArrowInvalid:
        pass
    try:  # partitions whose schemas differ (a column missing in some): unified, nulls filled
        schema = pa.unify_schemas([b.schema for b in pending], promote_options="permissive")
        yield pa.concat_tables([pa.Table.from_batches([b]) for b in pending], promote_options="permissive").cast(schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        run: list[Any] = []
        for batch in pending:
            if run and not batch.schema.equals(run[0].schema):
                yield pa.Table.from_batches(run)
                run = []
            run.append(batch)
        yield pa.Table.from_batches(run)


def _short(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__
