"""``mlops-nb export``: fetch a model from MLflow and write a standalone serving package for it.

The package needs neither mlops-nb nor MLflow at run time. The model file keeps MLflow's skops format and
is loaded with ``skops.io.load`` and an explicit list of trusted types decided by the person exporting
(``mlops_nb.loading.trust``: never the model's own ``skops_trusted_types``). A model saved with pickle or
cloudpickle is converted to skops here, only when asked (``--allow-pickle``: loading a pickle runs code). The
sha256 of the model file and the trusted types are written into the package's code (``app/integrity.py``),
and the server refuses to start when the file no longer matches.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlops_nb.config import Settings, load_settings
from mlops_nb.exceptions import ExportError, UsageError
from mlops_nb.loading.model import SKOPS_FILE, load, sklearn_flavor, trusted_model_file
from mlops_nb.serving.schema import InputSchema, SchemaError, input_schema

MODEL_DIR = "model"
METADATA_FILE = "serving.json"
PROFILE_FILE = "reference_profile.json"
EXAMPLE_FILE = "input_example.json"
_URI = re.compile(
    r"^(?:models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))"
    r"|models:/(?P<model_id>m-[0-9a-fA-F]+)"  # an MLflow 3 logged model, by its id
    r"|runs:/(?P<run>[0-9A-Za-z_-]+)/(?P<path>.+))$"
)


@dataclasses.dataclass(frozen=True)
class ModelRef:
    """Which model an URI names, resolved against the registry."""

    uri: str
    name: str | None = None
    version: str | None = None
    alias: str | None = None
    run_id: str | None = None
    model_id: str | None = None


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What ``export`` wrote.

    Attributes:
        out: the package folder.
        ref: the model (name, version, run id).
        sha256: of the model file in ``out/model``.
        trusted_types: types beyond skops' defaults that the server trusts when loading the model.
        converted_from: "pickle"/"cloudpickle" when the model was converted to skops, else None.
    """

    out: Path
    ref: ModelRef
    sha256: str
    trusted_types: tuple[str, ...]
    converted_from: str | None


def parse_uri(uri: str) -> ModelRef:
    """Split a model URI; ExportError naming the accepted forms when it is none of them."""
    match = _URI.match(uri.strip())
    if match is None:
        raise ExportError(
            f"Bad model URI {uri!r}. Use models:/NAME@ALIAS, models:/NAME/VERSION, models:/m-<model id> or "
            "runs:/RUN_ID/PATH (for a model logged with mnb.log_model: runs:/<stage run id>/model)."
        )
    g = match.groupdict()
    return ModelRef(uri.strip(), g["name"], g["version"], g["alias"], g["run"], g["model_id"])


def resolve(ref: ModelRef, settings: Settings) -> ModelRef:
    """Fill in version and run id of a registry URI, resolving an alias once: the package is then built from
    that version, even if the alias moves while it is fetched."""
    if ref.name is None:
        return ref
    from mlops_nb.exceptions import UsageError
    from mlops_nb.tracking.reading import model_version

    try:
        version = model_version(ref.uri, settings)
    except UsageError as e:  # it names the URI, the store and what to check: said once, with what there is
        raise ExportError(f"{e}{_what_there_is(ref, settings)}") from e
    return dataclasses.replace(ref, version=version["version"], run_id=version["run_id"])


def _what_there_is(ref: ModelRef, settings: Settings) -> str:
    """What the registry has for a URI that named nothing: the model's aliases, or how models get there."""
    from mlops_nb.tracking.registry import aliases

    try:
        known = aliases(ref.name or "", settings)
    except UsageError:
        known = {}
    if not known:
        return f" Registered model {ref.name!r} has no alias here: mlops-nb promote registers models and sets aliases."
    listed = ", ".join(f"@{alias} (version {version})" for alias, version in sorted(known.items()))
    return f" {ref.name} has {listed}."


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def example_frame(folder: Path, mlmodel: dict[str, Any], schema: InputSchema) -> tuple[list[str], list[list[Any]]]:
    """The input example saved with the model, as column names and rows in signature order."""
    info = mlmodel.get("saved_input_example_info") or {}
    path = folder / info.get("artifact_path", EXAMPLE_FILE)
    if not path.is_file():
        raise ExportError(
            "The model has no input example, which the package's own tests score. Log it with "
            "mnb.log_model(model, 'model', input_example=X[:5])."
        )
    data = json.loads(path.read_text())
    names = [c.name for c in schema.columns]
    if isinstance(data, dict) and "columns" in data:
        position = {str(name): i for i, name in enumerate(data["columns"])}
        rows = [[row[position[name]] for name in names] for row in data["data"]]
    elif isinstance(data, dict) and "inputs" in data:
        rows = data["inputs"]
    else:
        rows = data
    return names, [[_null_if_not_finite(value) for value in row] for row in rows]


def _null_if_not_finite(value: Any) -> Any:
    """None for NaN and infinities: MLflow writes them as bare NaN/Infinity, which is not JSON, and the
    server takes null (not NaN) as a missing value; the README, the package's tests and its start-up
    check all use the example."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def nullable_from_example(schema: InputSchema, rows: list[list[Any]]) -> InputSchema:
    """``schema`` with every column that has a missing value in the example rows accepting null.

    MLflow marks such columns optional when it infers the signature; an explicit signature may not, and
    the package must still score its own example.
    """
    missing = {i for row in rows for i, value in enumerate(row) if value is None}
    if not missing:
        return schema
    columns = tuple(
        dataclasses.replace(c, nullable=True) if i in missing and not c.nullable else c
        for i, c in enumerate(schema.columns)
    )
    return dataclasses.replace(schema, columns=columns)


def model_input(schema: InputSchema, rows: list[list[Any]]) -> Any:
    """What the model was trained on: a DataFrame with the signature's dtypes, or one numpy array."""
    import numpy as np
    import pandas as pd

    if schema.tensor:
        return np.array(rows, dtype=schema.columns[0].dtype)
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema.columns]
    return pd.DataFrame({c.name: np.array(v, dtype=c.dtype) for c, v in zip(schema.columns, columns, strict=True)})


def _jsonable(values: Any) -> Any:
    return values.tolist() if hasattr(values, "tolist") else list(values)


def expected_outputs(model: Any, schema: InputSchema, rows: list[list[Any]]) -> dict[str, Any]:
    """The model's own predictions (and probabilities) on the example rows, for the package's tests.

    Raises:
        ExportError: a multi-output classifier, which the package cannot serve.
    """
    x = model_input(schema, rows)
    predictions = model.predict(x)
    if getattr(predictions, "ndim", 1) > 1 and hasattr(model, "classes_"):
        # one array of classes and of probabilities per output: the metrics per class, /predict's
        # probabilities and the start-up code all take one set of classes
        raise ExportError(
            f"The model is a multi-output classifier (it predicts {predictions.shape[1]} labels per row), which "
            "the serving package does not support. It serves classifiers with one output, regressors with one "
            "or several outputs, clusterers and outlier detectors: export one classifier per output."
        )
    out: dict[str, Any] = {"predictions": _jsonable(predictions)}
    if callable(getattr(model, "predict_proba", None)):
        out["probabilities"] = _jsonable(model.predict_proba(x))
        out["classes"] = _jsonable(model.classes_)
    return out


def _prepare_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out} is a file. Choose a folder path.")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise ExportError(
                f"--out {out} exists and is not empty. Choose a new folder, or pass --force to replace it."
            )
        here = Path.cwd().resolve()
        if out.resolve() == here or out.resolve() in here.parents:
            raise ExportError(f"--out {out} contains the working directory; --force will not replace it.")


def export(
    model_uri: str,
    out: Path,
    *,
    force: bool = False,
    trust: Sequence[str] = (),
    allow_unsafe: Sequence[str] = (),
    allow_pickle: bool = False,
    settings: Settings | None = None,
) -> ExportResult:
    """Write the serving package of ``model_uri`` into ``out``.

    Args:
        model_uri: ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``models:/m-<model id>`` or
            ``runs:/RUN_ID/PATH``.
        out: the package folder (created; must be missing or empty unless ``force``).
        force: replace ``out`` when it exists.
        trust: types to trust when loading the skops file, beyond skops' defaults and the inert
            scikit-learn/numpy/scipy classes mlops-nb trusts (``mlops_nb.loading.trust``).
        allow_unsafe: types that can run code when loaded, trusted all the same (named one by one).
        allow_pickle: convert a pickle/cloudpickle model to skops (loads the pickle once, here).
        settings: mlops-nb settings (default: the project's).

    Raises:
        ExportError: bad URI, unsupported model, untrusted or unsafe types, ``out`` in the way.
        StoreError: the model cannot be fetched from MLflow.
    """
    from mlops_nb.serving.render import render_package
    from mlops_nb.tracking import query

    ref = parse_uri(model_uri)
    out = Path(out)
    _prepare_out(out, force)
    s = settings or load_settings()
    ref = resolve(ref, s)
    with tempfile.TemporaryDirectory(prefix="mlops-nb-export-") as tmp:
        pinned = f"models:/{ref.name}/{ref.version}" if ref.name else ref.uri  # the version resolved above
        folder = query.download_model(pinned, Path(tmp) / "download")
        try:
            mlmodel = query.mlmodel(folder)
        except UsageError as e:
            raise ExportError(str(e)) from e
        if ref.run_id is None and mlmodel.get("run_id"):  # models:/m-<id>: MLmodel names the run that logged it
            ref = dataclasses.replace(ref, run_id=str(mlmodel["run_id"]))
        flavor = sklearn_flavor(mlmodel)
        profile_path = folder / PROFILE_FILE
        profile = json.loads(profile_path.read_text()) if profile_path.is_file() else None
        try:
            schema = input_schema(mlmodel.get("signature"), profile)
        except SchemaError as e:
            raise ExportError(str(e)) from e

        model_file, trusted, converted_from = trusted_model_file(folder, flavor, trust, allow_unsafe, allow_pickle)

        model = load(model_file, trusted)
        names, rows = example_frame(folder, mlmodel, schema)
        schema = nullable_from_example(schema, rows)
        expected = expected_outputs(model, schema, rows)
        metadata = {
            "model_uri": ref.uri,
            "name": ref.name,
            "version": ref.version,
            "alias": ref.alias,
            "run_id": ref.run_id,
            "file": SKOPS_FILE,
            "sha256": sha256(model_file),
            "format": "skops",
            "converted_from": converted_from,
            "trusted_types": list(trusted),
            "flavor": "sklearn",
            "sklearn_version": flavor.get("sklearn_version"),
            "python_version": (mlmodel.get("flavors", {}).get("python_function") or {}).get("python_version"),
            "mlflow_version": mlmodel.get("mlflow_version"),
            "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        staging = Path(tmp) / "package"
        render_package(
            staging,
            schema=schema,
            metadata=metadata,
            example={"columns": names, "data": rows, **expected},
            model_requirements=_model_requirements(folder),
        )
        model_dir = staging / MODEL_DIR
        model_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(model_file, model_dir / SKOPS_FILE)
        shutil.copy2(folder / "MLmodel", model_dir / "MLmodel")
        if profile is not None:
            shutil.copy2(profile_path, model_dir / PROFILE_FILE)
        (model_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
        _move_into_place(staging, out)
    return ExportResult(out, ref, metadata["sha256"], trusted, converted_from)


def _move_into_place(staging: Path, out: Path) -> None:
    """The finished package replaces ``out``."""
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(staging), str(out))


def _model_requirements(folder: Path) -> list[str]:
    path = folder / "requirements.txt"
    if not path.is_file():
        return []
    lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("-")]
