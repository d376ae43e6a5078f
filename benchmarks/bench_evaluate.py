"""What a model's quality report costs: ``mnb.evaluate``'s parts against ``mlflow.models.evaluate``, one process.

breast_cancer (569 x 30, shipped with scikit-learn), split in half (stratified, seeded): a model fitted on one
half, evaluated on the other. Two models: a StandardScaler + LogisticRegression pipeline and a 100-tree
RandomForestClassifier. Medians over ``--repeat`` runs, side by side in the same process (the first, warm-up
run of each is not counted: imports and numba compilation happen there):

- ours, all-in: ``evaluate_model`` with metrics, the standard plots (Vega-Lite specs), SHAP (Linear / Tree
  explainer), permutation importance, declared slices and the worst-segment search, 5-fold CV;
- ours + report: the same and the self-contained HTML report (Matplotlib SVG);
- ours recorded: ``mnb.evaluate`` inside a stage of a run on a fresh embedded SQLite store (metrics,
  result.json, report.html and the plots logged), then ``mnb.flush()``;
- anchor: ``mlflow.models.evaluate(model_uri, data, targets=..., model_type="classifier")`` into a run of the
  same kind of store, without SHAP (``log_model_explainability: False``) and with it (its default explainer);
  the model is logged once beforehand (not timed).

Every metric of ours is checked against MLflow's where both have it (to 1e-12), and the plots MLflow failed to
log are counted.

    python benchmarks/bench_evaluate.py [--repeat 3] [--no-shap-anchor] [--model logistic|100-tree] 2>/dev/null

Prints figures and ratios; asserts nothing (this machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ANCHOR_PLOTS = ("shap_beeswarm_plot", "shap_summary_plot", "shap_feature_importance_plot")


def data() -> tuple[Any, Any, Any, Any]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return train_test_split(X, y, test_size=0.5, random_state=0, stratify=y)


def models(X: Any, y: Any) -> dict[str, Any]:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "logistic-regression pipeline": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X, y),
        "100-tree forest": RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y),
    }


def median_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    fn()  # warm-up
    times, last = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        last = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-shap-anchor", action="store_true", help="skip MLflow's SHAP run (30 s each here)")
    parser.add_argument("--model", choices=["both", "logistic", "100-tree"], default="both")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    folder = Path(tempfile.mkdtemp(prefix="bench-evaluate-"))
    os.chdir(folder)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder / 'mlflow.db'}"
    import mlflow
    import skops.io

    import mlops_nb as mnb
    from mlops_nb.evaluation.report import evaluate_model

    X_train, X_test, y_train, y_test = data()
    test = X_test.assign(target=y_test)
    print(f"breast_cancer: fitted on {len(X_train)} rows, evaluated on {len(X_test)} x {X_test.shape[1]}")
    print(f"load: {os.getloadavg()[0]:.1f} (1-minute load average, 2 cores shared)")
    mlflow.set_experiment("bench")
    for label, model in models(X_train, y_train).items():
        if args.model != "both" and not label.startswith(args.model):
            continue
        trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))  # a forest's Tree nodes
        with mlflow.start_run(run_name="log"):
            logged = mlflow.sklearn.log_model(
                model, name="model", pip_requirements=["scikit-learn"], skops_trusted_types=trusted or None
            )
            uri = logged.model_uri

        def ours(model: Any = model) -> Any:
            evaluation = evaluate_model(model, X_test, y_test, slices=["mean radius:quantile(4)"], cv=5)
            [chart.spec() for chart in evaluation.charts]
            return evaluation

        def ours_report(model: Any = model) -> Any:
            evaluation = ours(model)
            evaluation.html(page=True)
            return evaluation

        def ours_recorded(model: Any = model) -> Any:
            with mnb.start_run("bench", kind="script"), mnb.stage("evaluate"):
                evaluation = mnb.evaluate(model, X_test, y_test, slices=["mean radius:quantile(4)"], cv=5)
            assert mnb.flush(300)
            return evaluation

        def anchor(shap: bool, uri: str = uri) -> Any:
            with mlflow.start_run(run_name="anchor"):
                return mlflow.models.evaluate(
                    uri,
                    test,
                    targets="target",
                    model_type="classifier",
                    evaluator_config={"log_model_explainability": shap},
                )

        t_ours, evaluation = median_of(ours, args.repeat)
        t_report, _ = median_of(ours_report, args.repeat)
        t_recorded, _ = median_of(ours_recorded, args.repeat)
        t_plain, plain = median_of(lambda: anchor(False), args.repeat)
        rows = [("ours all-in", t_ours), ("ours + HTML report", t_report), ("mnb.evaluate recorded", t_recorded)]
        rows.append(("mlflow.models.evaluate, no SHAP", t_plain))
        with_shap = None
        if not args.no_shap_anchor:
            t_shap, with_shap = median_of(lambda: anchor(True), max(1, args.repeat - 1))
            rows.append(("mlflow.models.evaluate, SHAP", t_shap))
        print(f"\n{label} (medians of {args.repeat}; parts of ours: {evaluation.result['seconds']})")
        for name, seconds in rows:
            print(f"  {name:<34} {seconds:8.3f} s")
        print(f"  ratio mlflow no SHAP / ours all-in:  {t_plain / t_ours:6.1f}x")
        if with_shap is not None:
            print(f"  ratio mlflow SHAP / ours all-in:     {t_shap / t_ours:6.1f}x")
            print(f"  ratio mlflow SHAP / ours recorded:   {t_shap / t_recorded:6.1f}x")
            missing = [p for p in ANCHOR_PLOTS if p not in with_shap.artifacts]
            print(f"  MLflow's SHAP plots missing: {len(missing)} of {len(ANCHOR_PLOTS)} {missing}")
        ours_metrics = evaluation.result["metrics"]
        shared = sorted(set(ours_metrics) & set(plain.metrics))
        worst = max(abs(ours_metrics[k] - plain.metrics[k]) for k in shared)
        print(f"  metrics shared with MLflow: {len(shared)}, largest difference {worst:.2g}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
