"""Saving a model into MLflow, done by the sender thread from what ``Recorder.log_model`` spooled.

The caller only pickles the model into the journal's spool (milliseconds); the ~3 s of MLflow's model
saving happen here. Requirements are pinned from the installed versions instead of MLflow's inference
(which re-imports the model in a subprocess, most of those 3 s).
"""

from __future__ import annotations

import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

MODEL_FILE = "model.joblib"
EXAMPLE_FILE = "input_example.joblib"
PROFILE_FILE = "reference_profile.json"
SAMPLE_FILE = "reference_sample.parquet"  # the reference rows (up to 100,000) and the model's predictions
SCORES_FILE = "reference_scores.parquet"  # predict_proba scores, labels and predictions of labelled rows
REFERENCE_FILES = (PROFILE_FILE, SAMPLE_FILE, SCORES_FILE)  # kept beside the model for monitoring
_REQUIREMENTS = ("mlflow", "scikit-learn", "numpy", "scipy", "pandas", "skops")


def requirements() -> list[str]:
    """Pinned requirements of a scikit-learn model saved here (the versions it was trained with)."""
    pins = []
    for name in _REQUIREMENTS:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return pins


def save_sklearn_model(client: Any, run_id: str, spooled: Path, name: str) -> None:
    """Save the spooled model as an MLflow scikit-learn model under artifact path ``name`` of the run."""
    import joblib
    import mlflow.sklearn
    import skops.io
    from mlflow.models import infer_signature

    model = joblib.load(spooled / MODEL_FILE)
    example = joblib.load(spooled / EXAMPLE_FILE) if (spooled / EXAMPLE_FILE).exists() else None
    signature = infer_signature(example, model.predict(example)) if example is not None else None
    # skops refuses to save what it would not load by default (numpy.dtype inside a SimpleImputer, say): the
    # types of the user's own model are declared trusted, and recorded in MLmodel for whoever loads it.
    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    with tempfile.TemporaryDirectory(prefix="mlops-nb-model-") as tmp:
        target = Path(tmp) / name
        mlflow.sklearn.save_model(
            model,
            str(target),
            signature=signature,
            input_example=example,
            pip_requirements=requirements(),
            skops_trusted_types=untrusted or None,
        )
        for file in REFERENCE_FILES:
            if (spooled / file).exists():
                shutil.copy2(spooled / file, target / file)
        client.log_artifacts(run_id, str(target), name)
