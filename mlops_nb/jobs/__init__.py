"""Notebook jobs: papermill executions recorded as MLflow ``job`` runs, sweeps, reproduction and CI gates."""
