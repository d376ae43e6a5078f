from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mlops_nb.tracking.executor import MAX_METRICS, MAX_PARAMS_TAGS, plan


def metric(run: str, k: str, v: float, rollup: str | None = None) -> dict:
    return {"op": "metric", "run": run, "k": k, "v": v, "t": 1, "step": 0, "rollup": rollup}


def test_a_run_becomes_create_batch_end() -> None:
    steps = plan(
        [
            {"op": "start", "run": "r", "exp": "e", "t": 0},
            {"op": "param", "run": "r", "k": "a", "v": "1"},
            metric("r", "m", 1.0),
            {"op": "tag", "run": "r", "k": "t", "v": "x"},
            {"op": "end", "run": "r", "status": "FINISHED", "t": 2},
        ]
    )
    assert [s.kind for s in steps] == ["create", "batch", "end"]
    assert steps[1].params == {"a": "1"} and steps[1].tags == {"t": "x"} and len(steps[1].metrics) == 1


def test_stage_metrics_are_rolled_up_to_the_top_level_run() -> None:
    steps = plan([metric("stage", "acc", 0.9, rollup="root")])
    by_run = {s.run: s for s in steps}
    assert by_run["root"].metrics == by_run["stage"].metrics


@given(
    n_params=st.integers(0, 350),
    n_tags=st.integers(0, 250),
    n_metrics=st.integers(0, 2500),
)
def test_batches_respect_mlflow_limits_and_lose_nothing(n_params: int, n_tags: int, n_metrics: int) -> None:
    records = [{"op": "param", "run": "r", "k": f"p{i}", "v": str(i)} for i in range(n_params)]
    records += [{"op": "tag", "run": "r", "k": f"t{i}", "v": str(i)} for i in range(n_tags)]
    records += [metric("r", "m", float(i)) for i in range(n_metrics)]
    steps = plan(records)
    for s in steps:
        assert len(s.params) <= MAX_PARAMS_TAGS and len(s.tags) <= MAX_PARAMS_TAGS
        assert len(s.params) + len(s.tags) + len(s.metrics) <= MAX_METRICS
    assert sum(len(s.params) for s in steps) == n_params
    assert sum(len(s.tags) for s in steps) == n_tags
    assert [m["v"] for s in steps for m in s.metrics] == [float(i) for i in range(n_metrics)]
