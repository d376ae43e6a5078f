"""Thresholds and the drift share of [tool.mlops_nb.monitor] change the decisions, and only those."""

from __future__ import annotations

import numpy as np
import pytest

from mlops_nb.exceptions import UsageError
from mlops_nb.monitoring.monitor import run_pass
from mlops_nb.monitoring.profile import reference_of


def _pass(**tuning):
    rng = np.random.default_rng(0)
    reference = reference_of({"a": rng.normal(0, 1, 5000), "b": rng.normal(0, 1, 5000)})
    current = {"a": rng.normal(0.3, 1, 5000), "b": rng.normal(0.0, 1, 5000)}  # a moved by 0.3 std
    return run_pass(reference, current, **tuning).result


def test_thresholds_and_drift_share_override_the_preset():
    plain = _pass()
    assert plain["features"]["a"]["drift"] and not plain["features"]["b"]["drift"]
    assert plain["dataset_drift"] and plain["drift_share"] == 0.5

    lenient = _pass(thresholds={"wasserstein": 0.5})
    assert not lenient["features"]["a"]["drift"] and not lenient["dataset_drift"]
    assert lenient["features"]["a"]["scores"]["wasserstein"]["threshold"] == 0.5
    assert (
        lenient["features"]["a"]["scores"]["psi"]["threshold"] == plain["features"]["a"]["scores"]["psi"]["threshold"]
    )

    strict_share = _pass(drift_share=0.75)
    assert strict_share["features"]["a"]["drift"] and not strict_share["dataset_drift"]


def test_a_threshold_for_no_method_names_the_methods():
    with pytest.raises(
        UsageError, match=r"No drift method 'wasserstien' to set a threshold for: use one of .*wasserstein"
    ):
        _pass(thresholds={"wasserstien": 0.2})
