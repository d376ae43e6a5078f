"""The comparison chart spec (mlops_nb/widgets/charts.py), which the sidebar gets from the server (compare route)."""

from __future__ import annotations

import json

import pytest

from mlops_nb.exceptions import UnknownMetricError, UsageError
from mlops_nb.widgets.charts import MAX_AXES, choose, compare_spec


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


# An evaluated run's metrics: its own, cross-validation, worst slices and baseline deltas (tracking/evaluations)
EVALUATED = {
    **{m: 0.9 for m in ("accuracy_score", "f1_score", "log_loss", "precision_score", "recall_score", "roc_auc")},
    **{f"cv.{m}.{k}": 0.9 for m in ("accuracy_score", "roc_auc") for k in ("mean", "low", "high")},
    **{f"delta.{m}{k}": 0.01 for m in ("accuracy_score", "roc_auc") for k in ("", ".low", ".high")},
    "worst_slice.accuracy_score": 0.7,
    "worst_slice.recall_score": 0.6,
    "example_count": 143.0,
}


def _evaluated(recall: tuple[float, float]) -> list[dict]:
    return [
        run(i, {"C": str(c), "max_iter": str(100 * c)}, {**EVALUATED, "worst_slice.recall_score": r})
        for i, (c, r) in enumerate(zip((0.1, 1.0), recall, strict=True), 1)
    ]


def _axes(spec: dict) -> list[str]:
    lines, _ = _layers(spec)
    return [a for _, a in sorted({(row["order"], row["axis"]) for row in lines})]


def test_by_default_the_gate_metric_and_the_worst_slices_come_before_the_alphabet_and_the_cut_says_so():
    runs = _evaluated((0.6, 0.8))
    choice = choose(runs, first=["roc_auc", "worst_slice.recall"])  # short names, as the gates take them
    assert choice.available[:2] == ["roc_auc", "worst_slice.recall_score"]
    # then the evaluation's own metrics, its worst slices, cv means, deltas, and interval bounds last
    own = ["accuracy_score", "f1_score", "log_loss", "precision_score", "recall_score"]
    assert choice.available[2:8] == [*own, "worst_slice.accuracy_score"]
    derived = ["cv.accuracy_score.mean", "cv.roc_auc.mean", "delta.accuracy_score", "delta.roc_auc"]
    assert choice.available[8:12] == derived
    assert choice.available[-2:] == ["delta.roc_auc.low", "example_count"]  # bounds and counts last
    assert choice.params == ["C", "max_iter"] and len(choice.metrics) == MAX_AXES - 2
    assert choice.left_out == choice.available[MAX_AXES - 2 :] and len(choice.left_out) == 21 - 10
    spec = compare_spec(runs, first=["roc_auc", "worst_slice.recall"], hint="choose them above")
    assert _axes(spec) == ["C", "max_iter", *choice.metrics]
    assert spec["vconcat"][0]["title"]["subtitle"] == "+11 more metrics: choose them above"
    # alphabetical order would cut every worst slice: "worst_slice" sorts last
    assert "worst_slice.recall_score" not in sorted(EVALUATED)[: MAX_AXES - 2]


def test_chosen_metrics_are_drawn_in_their_order_after_the_params_and_what_does_not_fit_is_said():
    runs = _evaluated((0.6, 0.8))
    spec = compare_spec(runs, metrics=["worst_slice.recall", "accuracy_score"])
    assert _axes(spec) == ["C", "max_iter", "worst_slice.recall_score", "accuracy_score"]
    assert "subtitle" not in spec["vconcat"][0]["title"]
    recall = {row["run_id"][-1]: row["value"] for row in _layers(spec)[0] if row["axis"] == "worst_slice.recall_score"}
    assert recall == {"1": 0.6, "2": 0.8}
    _, points = _layers(spec)  # the scatter grid has only the drawn metrics
    assert {p["metric"] for p in points} == {"worst_slice.recall_score", "accuracy_score"}
    # twelve chosen metrics: the parameters stay, the last two metrics are left out, and the chart says so
    twelve = choose(runs).available[:MAX_AXES]
    many = choose(runs, metrics=twelve)
    assert many.params == ["C", "max_iter"] and many.metrics == twelve[:-2] and many.left_out == twelve[-2:]
    assert choose(runs, params=[], metrics=twelve).metrics == twelve  # params=[]: every axis a metric
    # by default, parameters take at most half the axes while there are metrics to draw
    wide = [run(i, {f"p{k:02}": str(i * (k + 1)) for k in range(15)}, {"m": float(i)}) for i in range(3)]
    assert len(choose(wide).params) == MAX_AXES // 2 and len(choose(wide).params_left_out) == 15 - MAX_AXES // 2
    assert "+9 more parameters: " in compare_spec(wide)["vconcat"][0]["title"]["subtitle"]
    assert len(choose(wide, metrics=[]).params) == MAX_AXES
    assert choose(runs, params=[], metrics=[]).metrics == []  # nothing chosen: an empty chart, not the default


def test_an_unknown_metric_or_param_is_refused_naming_what_the_runs_have():
    runs = _evaluated((0.6, 0.8))
    with pytest.raises(UnknownMetricError) as caught:
        compare_spec(runs, metrics=["accuracy_score", "worst_slice.recal"])
    assert isinstance(caught.value, ValueError) and caught.value.unknown == ["worst_slice.recal"]
    message = str(caught.value)
    assert "'worst_slice.recal'" in message and "Choose among: accuracy_score, f1_score" in message
    assert "worst_slice.recall_score" in message and caught.value.available == choose(runs).available
    with pytest.raises(UsageError, match=r"parameter 'alpha'.*Choose among: C, max_iter"):
        choose(runs, params=["alpha"])
    lots = [run(1, {}, {f"m{k:03}": 1.0 for k in range(100)}), run(2, {}, {"m000": 2.0})]
    with pytest.raises(UnknownMetricError, match=r"m039 and 60 more\.$"):  # a bounded list
        choose(lots, metrics=["x" * 500])
