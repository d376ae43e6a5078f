"""Label-free performance (CBPE): the estimate tracks realised performance under covariate shift."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from mlops_nb.exceptions import UsageError
from mlops_nb.monitoring.performance import calibrate, performance, scores_table


def _data(rng, rows, shift=0.0, classes=2):
    """Features whose relation to the label never changes (covariate shift only): P(y | x) is fixed."""
    x = rng.normal(0.0, 1.0, (rows, 4))
    x[:, 0] += shift
    x[:, 1] -= shift / 2
    logits = np.column_stack([np.zeros(rows), 1.5 * x[:, 0] - x[:, 1] + 0.5 * x[:, 2] ** 2 - 0.5])
    if classes == 3:
        logits = np.column_stack([logits, 1.2 * x[:, 1] + 0.8 * x[:, 3]])
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    y = np.array([rng.choice(classes, p=row) for row in p])
    return x, y


@pytest.mark.parametrize("classes", [2, 3])
def test_estimate_is_within_003_of_realised_accuracy_under_covariate_shift(classes):
    rng = np.random.default_rng(7)
    x_train, y_train = _data(rng, 5000, classes=classes)
    model = LogisticRegression(max_iter=1000).fit(x_train, y_train)  # misspecified (x2**2): scores need calibrating
    x_ref, y_ref = _data(rng, 10_000, classes=classes)
    calibration = calibrate(model.predict_proba(x_ref), y_ref, [str(c) for c in model.classes_])
    x_cur, y_cur = _data(rng, 20_000, shift=1.5, classes=classes)
    result = performance(calibration, model.predict_proba(x_cur), labels=y_cur)

    real, est, ref = result["realised"], result["estimated"], result["reference"]
    # The shift really changes performance: the reference figure would be a wrong guess...
    assert abs(real["accuracy"] - ref["accuracy"]) > 0.04
    # ...while the estimate, from scores alone, lands within 0.03 of what the labels show.
    assert abs(est["accuracy"] - real["accuracy"]) <= 0.03
    assert abs(est["f1"] - real["f1"]) <= 0.04
    assert abs(est["roc_auc"] - real["roc_auc"]) <= 0.04
    assert result["rows"] == 20_000 and result["reference_rows"] == 10_000 and result["method"] == "cbpe"


def test_realised_equals_scikit_learn():
    from sklearn import metrics

    rng = np.random.default_rng(1)
    x, y = _data(rng, 3000)
    model = LogisticRegression().fit(x, y)
    scores = model.predict_proba(x)
    calibration = calibrate(scores, y, ["0", "1"])
    real = performance(calibration, scores, labels=y)["realised"]
    assert real["accuracy"] == metrics.accuracy_score(y, model.predict(x))
    assert real["f1"] == pytest.approx(metrics.f1_score(y, model.predict(x)), abs=1e-15)
    assert real["roc_auc"] == pytest.approx(metrics.roc_auc_score(y, scores[:, 1]), abs=1e-12)


def test_reference_scores_table_layout():
    import pyarrow as pa

    table = pa.table(
        {"score_no": [0.9, 0.2], "score_yes": [0.1, 0.8], "label": ["no", "yes"], "prediction": ["no", "yes"]}
    )
    classes, scores, labels = scores_table(table)
    assert classes == ["no", "yes"] and scores.shape == (2, 2) and list(labels) == ["no", "yes"]
    with pytest.raises(UsageError, match="reference_y"):
        scores_table(pa.table({"score_a": [0.5]}))


def test_bad_input_names_the_fix():
    rng = np.random.default_rng(2)
    scores = rng.random((200, 2))
    labels = rng.integers(0, 2, 200)
    with pytest.raises(UsageError, match="at least 100"):
        calibrate(scores[:50], labels[:50], ["0", "1"])
    with pytest.raises(UsageError, match=r"not classes of the model \('7'"):
        calibrate(scores, np.where(labels == 1, 7, 0), ["0", "1"])
    with pytest.raises(UsageError, match="never show class '1'"):
        calibrate(scores, np.zeros(200, dtype=int), ["0", "1"])
    calibration = calibrate(scores, labels, ["0", "1"])
    with pytest.raises(UsageError, match="one column per class"):
        performance(calibration, rng.random((10, 3)))
    with pytest.raises(UsageError, match="one label per row"):
        performance(calibration, rng.random((10, 2)), labels=[0, 1])
    assert performance(calibration, rng.random((10, 2)))["realised"] is None
