"""Columns of Arrow data as the monitor sees them: their kind, their numbers, their categories.

Every monitored column is ``numeric`` (integers, floats, decimals), ``categorical`` (strings, booleans,
dictionaries) or ``other`` (dates, times, nested values: checked for presence and missing values only).
Categories are compared as Python would print them, so a boolean is ``"True"``/``"False"`` whether it came
from pandas, a CSV file or a JSON line, and the serving package's checks agree with the profile.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

NUMERIC = "numeric"
CATEGORICAL = "categorical"
OTHER = "other"


def kind_of(arrow_type: Any) -> str:
    """The monitoring kind of an Arrow type: ``numeric``, ``categorical`` or ``other``."""
    import pyarrow as pa

    t = arrow_type
    if pa.types.is_dictionary(t):
        return CATEGORICAL
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return NUMERIC
    if pa.types.is_boolean(t) or pa.types.is_string(t) or pa.types.is_large_string(t):
        return CATEGORICAL
    if pa.types.is_null(t):  # a column with no value at all in this chunk: it takes any kind
        return OTHER
    return OTHER


def is_label(arrow_type: Any) -> bool:
    """True for integer and boolean types: values that may be the labels of categories."""
    import pyarrow as pa

    return pa.types.is_integer(arrow_type) or pa.types.is_boolean(arrow_type)


def numbers(column: Any) -> Any:
    """A numeric Arrow column as a new float64 NumPy array, missing values as NaN.

    The pieces of a chunked column are copied straight into one NumPy array (no combined Arrow copy first).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_null(column.type):
        return np.full(len(column), np.nan)
    floats = pc.cast(column, pa.float64(), safe=False)
    if floats.null_count:
        floats = pc.fill_null(floats, np.nan)
    pieces = floats.chunks if isinstance(floats, pa.ChunkedArray) else [floats]
    array = np.empty(len(floats), dtype=np.float64)
    start = 0
    for piece in pieces:
        # the values buffer read in place (Array.to_numpy would import pandas: ~40 MB for nothing)
        values = np.frombuffer(piece.buffers()[1], dtype=np.float64, count=len(piece), offset=piece.offset * 8)
        array[start : start + len(piece)] = values
        start += len(piece)
    array += 0.0  # -0.0 becomes 0.0: equal values must look equal whatever order they came in
    return array


def drop_infinite(numbers: Any) -> int:
    """Make +-inf values missing (NaN), in place, and say how many there were.

    An infinite feature value is a data bug, not a large number: it would make means, spreads and distances
    infinite. It is counted as missing, and reported.
    """
    import numpy as np

    infinite = np.isinf(numbers)
    count = int(np.count_nonzero(infinite))
    if count:
        numbers[infinite] = np.nan
    return count


def try_numbers(column: Any) -> Any | None:
    """The column as float64 numbers when it can be read as such (strings like ``"1.5"``), else None."""
    import pyarrow as pa

    try:
        return numbers(column)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None


def category_counts(column: Any) -> Iterator[tuple[str, int]]:
    """(category, count) of the column's present values."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):
        column = pc.cast(column, column.type.value_type)
    counts = pc.value_counts(column)
    values = counts.field("values").to_pylist()
    for value, count in zip(values, counts.field("counts").to_pylist(), strict=True):
        if value is not None:
            yield str(value), int(count)  # str(True) == "True", as pandas' astype(str)


def to_arrow_table(frame: Any) -> Any:
    """A pandas DataFrame (or anything ``pandas.DataFrame()`` accepts, like an array) as an Arrow table.

    Columns Arrow cannot type (an object column mixing numbers and strings) are read as their strings.
    """
    import pandas as pd
    import pyarrow as pa

    if isinstance(frame, pa.Table):
        return frame
    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(frame)
    frame = frame.rename(columns=str)
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        fixed = {}
        for name in frame.columns:
            try:
                fixed[name] = pa.array(frame[name], from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                series = frame[name]
                fixed[name] = pa.array([None if pd.isna(v) else str(v) for v in series], type=pa.string())
        return pa.table(fixed)
