"""Models logged with mnb.log_model reach MLflow, even estimators skops does not trust by default."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import mlops_nb as mnb
from tests.conftest import embedded_client


def test_a_pipeline_with_an_imputer_is_saved_and_loads_back(project: Path) -> None:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    X = pd.DataFrame({"a": [1.0, np.nan, 3, 4, 5, 6], "b": [1, 2, 3, 4, 5, 6.0]})
    y = [0, 1, 0, 1, 0, 1]
    model = make_pipeline(SimpleImputer(), LogisticRegression()).fit(X, y)  # holds a numpy.dtype
    with mnb.start_run("imputer", kind="script"), mnb.stage("train") as stage:
        mnb.log_model(model, "model", input_example=X.head(3), reference=X)
    assert mnb.flush(120)  # it used to retry the refused save forever
    import mlflow.sklearn

    client = embedded_client(project)
    assert "mlops_nb.model_error" not in client.get_run(stage.run_id).data.tags
    local = client.download_artifacts(stage.run_id, "model", str(project))
    loaded = mlflow.sklearn.load_model(local)  # with the trusted types MLmodel records
    assert list(loaded.predict(X)) == list(model.predict(X))
