"""The request schema of a serving package, read from the model's MLflow signature and reference profile.

A signature is either column-based (a DataFrame: one ``ColSpec`` per column) or one 2-D numeric tensor (a
numpy array, whose columns are then named ``"0"``, ``"1"``, ... as ``pandas.DataFrame(array)`` names them,
which is also how the reference profile names them). Each column becomes a field of the generated pydantic
``Record`` model: its JSON name, Python type, whether it must be present and whether it may be null.
"""

from __future__ import annotations

import dataclasses
import json
import keyword
import re
from typing import Any

from mlops_nb.serving.literal import python_string

# MLflow column type -> (Python annotation in the generated schema, numpy dtype of the model input)
TYPES: dict[str, tuple[str, str]] = {
    "double": ("float", "float64"),
    "float": ("float", "float32"),
    "long": ("int", "int64"),
    "integer": ("int", "int32"),
    "boolean": ("bool", "bool"),
    "string": ("str", "object"),
    "datetime": ("datetime", "datetime64[ns]"),
}
# numpy dtype of a tensor signature -> MLflow column type
TENSOR_TYPES = {
    "float64": "double",
    "float32": "float",
    "int64": "long",
    "int32": "integer",
    "bool": "boolean",
}
_INT_BOUNDS = {"long": 63, "integer": 31}
# names a pydantic field must not take (BaseModel's own attributes)
_RESERVED = frozenset({"copy", "dict", "json", "schema", "construct", "validate", "fields", "from_orm"})


class SchemaError(ValueError):
    """The signature cannot be served (no signature, an unsupported type or shape)."""


@dataclasses.dataclass(frozen=True)
class Column:
    """One input column of the model.

    Attributes:
        name: the name clients send (a DataFrame column name).
        type: MLflow type (double, float, long, integer, boolean, string, datetime).
        required: the column must be present in every row.
        nullable: the value may be null (missing): the signature marks it optional, or the training data had
            missing values in it.
        field: the Python identifier of the pydantic field (``name`` when that is a valid identifier).
    """

    name: str
    type: str
    required: bool
    nullable: bool
    field: str

    @property
    def annotation(self) -> str:
        """The type annotation of the pydantic field."""
        base = TYPES[self.type][0]
        return f"{base} | None" if self.nullable else base

    @property
    def dtype(self) -> str:
        """The numpy dtype of the column in the model input (float64 for integers that may be missing)."""
        if self.nullable and self.type in ("long", "integer"):
            return "float64"
        if self.nullable and self.type == "boolean":
            return "object"
        return TYPES[self.type][1]

    @property
    def field_arguments(self) -> str:
        """The arguments of ``Field(...)`` for this column (alias, default, limits), or "" when none apply."""
        args = []
        if self.field != self.name:
            args.append(f"alias={python_string(self.name)}")
        if not self.required:
            args.append("default=None")
        if self.type in ("double", "float"):
            args.append("allow_inf_nan=False")
        if self.type in _INT_BOUNDS:
            bits = _INT_BOUNDS[self.type]
            args.append(f"ge={-(2**bits)}, le={2**bits - 1}")
        if self.type == "datetime":
            args.append("strict=False")  # ISO 8601 strings
        return ", ".join(args)


@dataclasses.dataclass(frozen=True)
class InputSchema:
    """The model's input: its columns in signature order, and whether it takes one numeric array."""

    columns: tuple[Column, ...]
    tensor: bool


def field_name(name: str, taken: set[str]) -> str:
    """A Python identifier for column ``name``, unique among ``taken`` (which it is added to)."""
    # ASCII only: Python folds some Unicode letters in identifiers (NFKC), which would rename the field
    candidate = re.sub(r"[^0-9A-Za-z_]+", "_", name).strip("_") or "column"
    if candidate[0].isdigit():
        candidate = f"c{candidate}"
    if keyword.iskeyword(candidate) or candidate in _RESERVED or candidate.startswith("model_"):
        candidate = f"{candidate}_"
    unique, n = candidate, 2
    while unique in taken:
        unique, n = f"{candidate}_{n}", n + 1
    taken.add(unique)
    return unique


def _missing_rates(profile: dict[str, Any] | None) -> dict[str, float]:
    columns = (profile or {}).get("columns", {})
    return {str(name): float(spec.get("missing_rate") or 0.0) for name, spec in columns.items()}


def input_schema(signature: dict[str, Any] | None, profile: dict[str, Any] | None = None) -> InputSchema:
    """The input schema from the ``signature`` section of an MLmodel file.

    Args:
        signature: the MLmodel ``signature`` mapping (its ``inputs`` is a JSON string).
        profile: the reference profile; a column with missing values in training accepts null.

    Raises:
        SchemaError: no signature, or one this package cannot serve; the message says what to change.
    """
    if not signature or not signature.get("inputs"):
        raise SchemaError(
            "The model has no input signature, so no request schema can be generated. Log it with an input "
            "example (mnb.log_model(model, 'model', input_example=X[:5])) or with a signature."
        )
    specs = json.loads(signature["inputs"]) if isinstance(signature["inputs"], str) else signature["inputs"]
    missing = _missing_rates(profile)
    taken: set[str] = set()
    if len(specs) == 1 and specs[0].get("type") == "tensor":
        return _tensor_schema(specs[0], missing, taken)
    columns = []
    for spec in specs:
        kind, name = spec.get("type"), spec.get("name")
        if kind not in TYPES or name is None:
            raise SchemaError(
                f"Input {name!r} has MLflow type {kind!r}; the serving package takes named columns of type "
                f"{', '.join(TYPES)} (or one 2-D numeric array). Log the model with a DataFrame input example "
                "of plain columns."
            )
        required = bool(spec.get("required", True))
        nullable = not required or missing.get(str(name), 0.0) > 0
        columns.append(Column(str(name), kind, required, nullable, field_name(str(name), taken)))
    return InputSchema(tuple(columns), tensor=False)


def _tensor_schema(spec: dict[str, Any], missing: dict[str, float], taken: set[str]) -> InputSchema:
    tensor = spec.get("tensor-spec", {})
    shape, dtype = tensor.get("shape", []), str(tensor.get("dtype"))
    if len(shape) != 2 or not isinstance(shape[1], int) or shape[1] < 1 or dtype not in TENSOR_TYPES:
        raise SchemaError(
            f"The model takes a tensor of shape {shape} and dtype {dtype}; the serving package takes a 2-D array "
            f"(rows x features) of {', '.join(TENSOR_TYPES)}. Log the model with a DataFrame input example."
        )
    kind = TENSOR_TYPES[dtype]
    columns = tuple(
        Column(
            str(i), kind, True, missing.get(str(i), 0.0) > 0 and kind in ("double", "float"), field_name(f"c{i}", taken)
        )
        for i in range(shape[1])
    )
    return InputSchema(columns, tensor=True)
