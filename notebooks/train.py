"""The example pipeline as a plain script: every step is a tracked stage of one MLflow run.

    python notebooks/train.py [--c 1.0]

Records go to the embedded store under .mlops_nb/ (or wherever MLFLOW_TRACKING_URI points). Look at them
with: mlflow ui --backend-store-uri sqlite:///.mlops_nb/mlflow.db
"""

from __future__ import annotations

import argparse

import mlops_nb as mnb


def main() -> None:
    parser = argparse.ArgumentParser(description="Train a wine classifier, tracked by mlops-nb.")
    parser.add_argument("--c", type=float, default=1.0, help="inverse regularisation strength (default 1.0)")
    parser.add_argument("--test-size", type=float, default=0.25, help="held-out fraction (default 0.25)")
    args = parser.parse_args()

    with mnb.start_run("train", experiment="wine") as run:
        with mnb.stage("load"):
            from sklearn.datasets import load_wine

            frame = load_wine(as_frame=True).frame  # shipped inside scikit-learn: no download
            mnb.log_metrics({"rows": len(frame), "columns": frame.shape[1] - 1})

        with mnb.stage("split"):
            from sklearn.model_selection import train_test_split

            mnb.log_param("test_size", args.test_size)
            train, test = train_test_split(frame, test_size=args.test_size, random_state=0, stratify=frame.target)

        with mnb.stage("train"):
            from sklearn.linear_model import LogisticRegression
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler

            mnb.log_param("C", args.c)
            model = make_pipeline(StandardScaler(), LogisticRegression(C=args.c, max_iter=1000))
            model.fit(train.drop(columns="target"), train.target)

        with mnb.stage("evaluate"):
            from sklearn.metrics import accuracy_score, f1_score

            predicted = model.predict(test.drop(columns="target"))
            mnb.log_metrics(
                {
                    "accuracy": accuracy_score(test.target, predicted),
                    "f1_macro": f1_score(test.target, predicted, average="macro"),
                }
            )
            mnb.log_text(str(model), "model.txt")

    print(f"run {run.run_id} in experiment 'wine' at {mnb.tracking_uri()}")


if __name__ == "__main__":
    main()
