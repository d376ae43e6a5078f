"""The reference profile of a training frame, stored beside a logged model for validation and drift.

Per column: dtype, missing rate, and for numbers quantiles, mean, standard deviation and a 20-bin
histogram; for categories (strings, booleans, categoricals) the frequency of the 50 most common values and
the number of distinct values. Plus the row count. Plain JSON, readable without mlops-nb.
"""

from __future__ import annotations

from typing import Any

PROFILE_VERSION = 1
QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
BINS = 20
TOP_CATEGORIES = 50


def _number(value: Any) -> float | None:
    value = float(value)
    return None if value != value else value  # NaN -> null in JSON


def column_profile(series: Any) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    profile: dict[str, Any] = {"dtype": str(series.dtype), "missing_rate": float(series.isna().mean())}
    values = series.dropna()
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        numbers = values.to_numpy(dtype="float64")
        profile["kind"] = "numeric"
        if len(numbers):
            quantiles = np.quantile(numbers, QUANTILES)
            counts, edges = np.histogram(numbers, bins=BINS)
            profile.update(
                quantiles={str(q): _number(v) for q, v in zip(QUANTILES, quantiles, strict=True)},
                mean=_number(numbers.mean()),
                std=_number(numbers.std()),
                histogram={"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
            )
    else:
        counts = values.astype(str).value_counts(normalize=True)
        profile.update(
            kind="categorical",
            distinct=int(values.nunique()),
            frequencies={str(k): float(v) for k, v in counts.head(TOP_CATEGORIES).items()},
        )
    return profile


def profile(frame: Any) -> dict[str, Any]:
    """The reference profile of a DataFrame (or anything ``pandas.DataFrame()`` accepts, like an array)."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(frame)
    return {
        "version": PROFILE_VERSION,
        "rows": len(frame),
        "columns": {str(name): column_profile(frame[name]) for name in frame.columns},
    }
