"""The Studies view's chart spec: best so far, pruned trials marked, parallel coordinates, importances."""

from __future__ import annotations

from mlops_nb.tracking.studies import TrialSummary
from mlops_nb.widgets.study_charts import study_spec


def trial(n: int, state: str | None, value: float | None, lr: str, kind: str) -> TrialSummary:
    return TrialSummary(
        trial=n,
        state=state,
        status="FINISHED",
        value=value,
        params={"lr": lr, "kind": kind},
        best=False,
        run_id=f"r{n}",
    )


TRIALS = [
    trial(2, "COMPLETE", 0.5, "0.1", "b"),
    trial(0, "COMPLETE", 0.9, "0.01", "a"),
    trial(1, "PRUNED", None, "0.5", "a"),
    trial(3, None, None, "0.2", "b"),  # its process died: re-run as a later trial
    trial(4, "COMPLETE", 0.7, "1e-3", "a"),
]


def test_the_best_so_far_follows_the_direction_and_valueless_trials_are_marked_at_the_worst_value() -> None:
    progress = study_spec(TRIALS, "loss", "minimize", ["lr", "kind"])["vconcat"][0]["data"]["values"]
    assert [(r["trial"], r["state"], r["best"]) for r in progress] == [
        (0, "COMPLETE", 0.9), (1, "PRUNED", 0.9), (2, "COMPLETE", 0.5), (3, "FAIL", 0.5), (4, "COMPLETE", 0.5),
    ]  # fmt: skip
    assert [r["mark"] for r in progress] == [None, 0.9, None, 0.9, None]
    maximize = study_spec(TRIALS, "acc", "maximize", ["lr", "kind"])["vconcat"][0]["data"]["values"]
    assert [r["best"] for r in maximize] == [0.9] * 5 and maximize[1]["mark"] == 0.5


def test_parallel_coordinates_scale_each_axis_and_name_a_choices_values() -> None:
    spec = study_spec(TRIALS, "loss", "minimize", ["lr", "kind"])
    parallel = spec["vconcat"][1]
    rows = parallel["data"]["values"]
    lr = {r["trial"]: r["scaled"] for r in rows if r["axis"] == "lr"}
    assert lr[4] == 0.0 and lr[1] == 1.0 and len(lr) == 5
    assert {r["trial"]: r["scaled"] for r in rows if r["axis"] == "kind"} == {0: 0.0, 1: 0.0, 2: 1.0, 3: 1.0, 4: 0.0}
    assert {r["trial"] for r in rows if r["axis"] == "loss"} == {0, 2, 4}  # only complete trials have a value
    logged = study_spec(TRIALS, "loss", "minimize", ["lr", "kind"], log=["lr"])["vconcat"][1]["data"]["values"]
    assert {r["trial"]: round(r["scaled"], 3) for r in logged if r["axis"] == "lr"}[2] == round(2 / (3 - 0.301), 3)
    labels = {(r["axis"], r["label"]) for r in parallel["layer"][2]["data"]["values"]}
    assert {("kind", "a"), ("kind", "b"), ("lr", "0.001"), ("lr", "0.5"), ("loss", "0.5"), ("loss", "0.9")} <= labels


def test_importances_make_a_third_chart_only_when_there_are_some() -> None:
    assert len(study_spec(TRIALS, "loss", "minimize", ["lr", "kind"])["vconcat"]) == 2
    spec = study_spec(TRIALS, "loss", "minimize", ["lr", "kind"], {"kind": 0.7, "lr": 0.3})
    assert spec["vconcat"][2]["data"]["values"] == [
        {"param": "kind", "importance": 0.7},
        {"param": "lr", "importance": 0.3},
    ]
