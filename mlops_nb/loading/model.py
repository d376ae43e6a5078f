"""A scikit-learn model from MLflow, loaded from its skops file with only the types a person trusts.

``trusted_model_file`` decides before anything of the file is loaded (a refusal comes before any of its
code could run); ``TrustedModels`` fetches and loads each model once for one command, so a monitor that
both scores and predicts with a model downloads and loads it a single time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlops_nb.exceptions import ExportError, UsageError
from mlops_nb.loading.trust import decide, untrusted_types

SKOPS_FILE = "model.skops"  # a pickle converted at export is saved under this name


def sklearn_flavor(mlmodel: dict[str, Any]) -> dict[str, Any]:
    """The ``sklearn`` flavor of an MLmodel; ExportError when the model has none."""
    flavor = (mlmodel.get("flavors") or {}).get("sklearn")
    if not flavor:
        flavors = ", ".join(mlmodel.get("flavors") or {}) or "none"
        raise ExportError(
            f"The model has no sklearn flavor (flavors: {flavors}); export serves scikit-learn models logged "
            "with mnb.log_model or mlflow.sklearn."
        )
    return flavor


def _convert_pickle(folder: Path, flavor: dict[str, Any], allow_pickle: bool) -> tuple[Path, str]:
    fmt = flavor.get("serialization_format", "cloudpickle")
    if not allow_pickle:
        raise ExportError(
            f"The model is saved with {fmt}, which runs code when loaded. Pass --allow-pickle to load it once "
            "here and convert it to skops for the serving package (only for a model you trust), or log it "
            "again in skops format (MLflow 3's default)."
        )
    import pickle

    import skops.io

    with (folder / flavor["pickled_model"]).open("rb") as f:
        model = pickle.load(f)  # the user allowed it (--allow-pickle); cloudpickle files load with pickle
    target = folder / SKOPS_FILE
    skops.io.dump(model, str(target))
    return target, fmt


def trusted_model_file(
    folder: Path, flavor: dict[str, Any], trust: Sequence[str], allow_unsafe: Sequence[str], allow_pickle: bool
) -> tuple[Path, tuple[str, ...], str | None]:
    """The model's skops file (a pickle converted when ``allow_pickle``), the types it may load, and the
    format it was converted from. Decided before anything of the file is loaded: a refusal comes before any
    of its code could run."""
    converted_from = None
    if flavor.get("serialization_format", "cloudpickle") == "skops":
        model_file = folder / flavor["pickled_model"]
        declared = list(flavor.get("skops_trusted_types") or [])
    else:
        model_file, converted_from = _convert_pickle(folder, flavor, allow_pickle)
        declared = []
    return model_file, decide(untrusted_types(model_file), trust, allow_unsafe, declared).types, converted_from


def load(model_file: Path, trusted: Sequence[str]) -> Any:
    """The model in skops file ``model_file``, loading only skops' defaults and ``trusted``."""
    import skops.io

    return skops.io.load(str(model_file), trusted=list(trusted))


class TrustedModels:
    """The models one command loads, each fetched and loaded once, with the trust ``mlops-nb export`` gives
    by default (skops' defaults and inert scikit-learn/numpy/scipy types; never a pickle)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._loaded: dict[str, Any] = {}

    def get(self, model_uri: str) -> Any:
        """The scikit-learn model at ``model_uri`` (a pinned ``models:/NAME/VERSION`` or ``runs:/`` URI).

        Raises:
            UsageError: no sklearn flavor, a pickled model, or types nobody trusted (the message names the fix).
        """
        if model_uri not in self._loaded:
            self._loaded[model_uri] = self._load(model_uri)
        return self._loaded[model_uri]

    def _load(self, model_uri: str) -> Any:
        from mlops_nb.tracking import query

        folder = query.download_model(model_uri, self.folder / f"model-{len(self._loaded)}")
        flavor = sklearn_flavor(query.mlmodel(folder))
        if flavor.get("serialization_format", "cloudpickle") != "skops":
            raise UsageError(
                f"{model_uri} is saved as a pickle: mlops-nb loads only skops files to score or "
                "evaluate it. Log it again with mnb.log_model (skops), or leave it out."
            )
        model_file, trusted, _ = trusted_model_file(folder, flavor, (), (), False)
        return load(model_file, trusted)
