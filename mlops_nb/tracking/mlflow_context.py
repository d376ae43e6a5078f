"""mlops-nb's provenance for plain ``mlflow.start_run()`` users (entry point ``mlflow.run_context_provider``)."""

from __future__ import annotations

from mlflow.tracking.context.abstract_context import RunContextProvider

from mlops_nb.tracking import provenance


class ProvenanceContext(RunContextProvider):
    """Adds host, user, python, notebook path, git state and environment hash to every MLflow run."""

    def in_context(self) -> bool:
        return True

    def tags(self) -> dict[str, str]:
        return {**provenance.process_tags(), **provenance.environment_tags()}
