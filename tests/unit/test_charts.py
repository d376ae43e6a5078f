"""The comparison chart spec (mlops_nb/widgets/charts.py), which the sidebar gets from the server (compare route)."""

from __future__ import annotations

import json

import pytest

from mlops_nb.widgets.charts import MAX_AXES, compare_spec


def run(i: int, params: dict[str, str], metrics: dict[str, float], name: str | None = "r") -> dict:
    return {
        "run_id": f"{i:032x}",
        "name": name,
        "experiment_id": "1",
        "kind": "notebook",
        "status": "FINISHED",
        "start_time": 1_700_000_000_000 + i,
        "end_time": None,
        "duration_s": None,
        "notebook": "train.ipynb",
        "params": params,
        "metrics": metrics,
    }


RUNS = [
    run(1, {"C": "0.1", "test_size": "0.25", "solver": "lbfgs"}, {"accuracy": 0.93, "f1_macro": 0.92}),
    run(2, {"C": "1.0", "test_size": "0.25", "solver": "saga"}, {"accuracy": 0.91, "train.loss": 0.3}),
    run(3, {"C": "1e1", "test_size": "0.25", "solver": "lbfgs", "flag": "True"}, {"accuracy": 0.87}, name=None),
    run(4, {"C": "", "test_size": "0.25"}, {"accuracy": float("nan")}),
]


def _layers(spec: dict) -> tuple[list[dict], list[dict]]:
    charts = spec["vconcat"]
    return charts[0]["data"]["values"], (charts[1]["data"]["values"] if len(charts) > 1 else [])


def test_parallel_coordinates_scale_each_axis_and_skip_text_and_constant_params():
    lines, points = _layers(compare_spec(RUNS[:3]))
    axes = sorted({row["axis"] for row in lines})
    # solver is text, test_size is the same everywhere, flag only in one run: none of them is an axis
    assert axes == ["C", "accuracy", "f1_macro", "train.loss"]
    c = {row["value"]: row["scaled"] for row in lines if row["axis"] == "C"}
    assert c == {0.1: 0.0, 1.0: pytest.approx((1.0 - 0.1) / 9.9), 10.0: 1.0}
    acc = {row["run_id"][-1]: row["scaled"] for row in lines if row["axis"] == "accuracy"}
    assert acc["1"] == 1.0 and acc["3"] == 0.0
    # one point per run, parameter and metric that both have a number
    assert {(p["param"], p["metric"]) for p in points} == {("C", "accuracy"), ("C", "f1_macro"), ("C", "train.loss")}
    assert len(points) == 3 + 1 + 1
    assert lines[0]["run"] == f"r ({RUNS[0]['run_id'][:8]})"
    assert next(row["run"] for row in lines if row["run_id"] == RUNS[2]["run_id"]).startswith("00000000 (")


def test_a_param_that_is_not_a_number_in_every_run_is_no_axis_and_nan_metrics_are_left_out():
    lines, _ = _layers(compare_spec(RUNS))
    assert "C" not in {row["axis"] for row in lines}  # "" in run 4 is not a number
    assert {row["run_id"] for row in lines if row["axis"] == "accuracy"} == {r["run_id"] for r in RUNS[:3]}
    json.dumps(compare_spec(RUNS), allow_nan=False)  # JSON without NaN: vega-embed parses it


def test_the_axes_are_bounded_and_the_spec_is_vega_lite_v5():
    many = [
        run(i, {f"p{k}": str(i * k) for k in range(20)}, {f"m{k}": i / (k + 1) for k in range(20)}) for i in range(5)
    ]
    spec = compare_spec(many)
    assert spec["$schema"] == "https://vega.github.io/schema/vega-lite/v5.json"
    lines, _ = _layers(spec)
    assert len({row["axis"] for row in lines}) == MAX_AXES
    assert compare_spec([])["vconcat"][0]["data"]["values"] == []
