"""What a tune's kernels import ahead: the installed libraries a notebook imports at the top of its cells."""

from __future__ import annotations

import pytest

from mlops_nb.jobs.kernel_env import notebook_imports


def test_installed_libraries_are_named_in_order_once_and_the_notebooks_own_modules_are_not() -> None:
    cells = [
        "%load_ext mlops_nb\nimport mlops_nb as mnb",
        "from sklearn.datasets import load_wine\nimport numpy as np, helpers\nfrom . import local",
        "import numpy\n!pip list\nimport json",
        "def broken(:",  # a cell that does not parse is skipped, not an error
        "if True:\n    import pandas",  # not at the top level: maybe never run
    ]
    assert notebook_imports(cells) == ["sklearn.datasets", "numpy"]


def test_libraries_that_start_threads_devices_or_a_plotting_backend_are_never_imported_ahead() -> None:
    cells = ["import matplotlib.pyplot as plt\nimport matplotlib\nimport mlflow.sklearn\nimport torch.nn"]
    pytest.importorskip("matplotlib")
    assert notebook_imports(cells) == ["matplotlib"]
