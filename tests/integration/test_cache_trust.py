"""The cache is never wrong: a notebook run again in fresh kernels sharing one cache is served from it only
when nothing a fresh kernel would compute from has changed — functions' defaults and closures, classes of
instances, names shadowing builtins, files read by path, local modules, the global random state — and a hit
leaves everything as a run would: files it wrote, every step of its metrics, a store that has its source."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import embedded_client
from tests.notebooks import mlops_nb, write_notebook

pytestmark = pytest.mark.slow

SETUP = """\
import numpy as np
import pandas as pd
def f(x, *, k={kw}):
    return x * k
def make(n):
    def g(x):
        return x * n
    return g
g = make({closure})
class S:
    def apply(self, x):
        return x + {inc}
s = S()
DATA = "data"
np.random.seed({seed})"""

STAGES = {
    "kw": "y_kw = f(3)",
    "closure": "y_closure = g(3)",
    "method": "y_method = s.apply(1)",
    "builtin": "y_builtin = max * 2",
    "csv": "y_csv = int(pd.read_csv('data.csv').a.sum())",
    "conf": "with open('conf.txt') as fh:\n    y_conf = fh.read()",
    "local": "import helpers\ny_local = helpers.f(3)",
    "shell": "out = !cat b.txt\ny_shell = out[0]",
    "runscript": "%run script.py",
    "rng": "y_rng = float(np.random.rand())",
    "seeded": "np.random.seed(7)\ny_seeded = float(np.random.rand())",  # its own seed: the state before is moot
    "joined": "import os\ny_joined = int(pd.read_csv(os.path.join(DATA, 'a.csv')).a.sum())",
    "side": "pd.DataFrame({'v': [1, 2]}).to_csv('side.csv', index=False)",
    "steps": "import mlops_nb as mnb\nfor i in range(50):\n    mnb.log_metric('loss', 1.0 / (i + 1), step=i)",
}
REPORT = """\
import json
runner = get_ipython().magics_manager.registry['MlopsMagics'].runner
y_script = z
w_after_rng = float(np.random.rand())
values = {k: v for k, v in globals().items() if k.startswith(('y_', 'w_'))}
hits = {r.name: r.cache_hit for r in runner.records}
print('RESULT ' + json.dumps({'values': values, 'hits': hits, 'run': mnb.active_run().root.run_id}))"""

VERSIONS = {
    "A": {"kw": 2, "closure": 2, "inc": 1, "seed": 1, "max": 5, "a": [1, 2], "conf": "one", "K": 2, "b": "bee", "z": 5},
    "B": {"kw": 3, "closure": 3, "inc": 2, "seed": 2, "max": 7, "a": [1, 5], "conf": "two", "K": 3, "b": "bay", "z": 6},
}


def prepare(project: Path, v: dict) -> Path:
    (project / "data.csv").write_text("a\n" + "\n".join(map(str, v["a"])) + "\n")
    (project / "data").mkdir(exist_ok=True)
    (project / "data" / "a.csv").write_text("a\n" + "\n".join(map(str, v["a"])) + "\n")
    (project / "conf.txt").write_text(v["conf"])
    (project / "helpers.py").write_text(f"K = {v['K']}\n\n\ndef f(x):\n    return x * K\n")
    (project / "b.txt").write_text(v["b"] + "\n")
    (project / "script.py").write_text(f"z = {v['z']}\n")
    cells = [
        "%load_ext mlops_nb",
        SETUP.format(kw=v["kw"], closure=v["closure"], inc=v["inc"], seed=v["seed"]),
        *(f"%%track {name}\n{code}" for name, code in STAGES.items()),
        REPORT,
    ]
    return write_notebook(project / "nb.ipynb", *cells, parameters=f"max = {v['max']}")


def execute(project: Path, path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str] | None = None) -> dict:
    monkeypatch.setenv("MLOPS_NB_NOTEBOOK", str(path))
    for k, value in (env or {}).items():
        monkeypatch.setenv(k, value)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(project)}}).execute()
    deadline = time.monotonic() + 60
    while list((project / ".mlops_nb" / "journal").glob("*.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.2)  # the kernel's last records reach MLflow as it shuts down
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    return json.loads(text.split("RESULT ", 1)[1])


def expected(v: dict) -> dict:
    return {
        "y_kw": 3 * v["kw"],
        "y_closure": 3 * v["closure"],
        "y_method": 1 + v["inc"],
        "y_builtin": 2 * v["max"],
        "y_csv": sum(v["a"]),
        "y_joined": sum(v["a"]),
        "y_conf": v["conf"],
        "y_local": 3 * v["K"],
        "y_shell": v["b"],
        "y_script": v["z"],
    }


def test_a_hit_only_when_a_fresh_kernel_would_compute_the_same(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = prepare(project, VERSIONS["A"])
    first = execute(project, path, monkeypatch)
    assert not any(first["hits"].values())
    assert {k: first["values"][k] for k in expected(VERSIONS["A"])} == expected(VERSIONS["A"])

    # The same notebook again, in a fresh kernel: served from the cache where the analysis sees every input.
    (project / "side.csv").unlink()
    second = execute(project, path, monkeypatch)
    cannot_see = {"shell", "runscript"}
    assert second["hits"] == {name: name not in cannot_see for name in STAGES}
    assert second["values"] == first["values"]  # including the draw after the restored random state
    assert (project / "side.csv").read_text() == "v\n1\n2\n"  # a file the stage wrote is written back

    client = embedded_client(project)
    stages = {
        r.data.tags["mlops_nb.stage"]: r
        for r in client.search_runs(
            [client.get_run(second["run"]).info.experiment_id], f"tags.`mlflow.parentRunId` = '{second['run']}'"
        )
    }
    assert [m.step for m in client.get_metric_history(stages["steps"].info.run_id, "loss")] == list(range(50))
    assert "shell command" in stages["shell"].data.tags["mlops_nb.cache_miss_reason"]
    assert "%run" in stages["runscript"].data.tags["mlops_nb.cache_miss_reason"]
    assert stages["builtin"].data.params == {"max": "5"}  # a parameter named like a builtin is a parameter
    source = client.get_run(stages["kw"].data.tags["mlops_nb.cache_source_run"])
    assert source.data.tags["mlflow.parentRunId"] == first["run"]

    # Every dependency changed: every stage that reads one runs again and computes what a fresh kernel does.
    path = prepare(project, VERSIONS["B"])
    third = execute(project, path, monkeypatch)
    assert third["hits"] == {name: name in {"side", "steps", "seeded"} for name in STAGES}
    assert third["values"]["y_seeded"] == first["values"]["y_seeded"]
    assert {k: third["values"][k] for k in expected(VERSIONS["B"])} == expected(VERSIONS["B"])
    assert third["values"]["y_rng"] != first["values"]["y_rng"]

    # Recording into another store: a hit would point at a run that store does not have, so it runs.
    other = f"sqlite:///{project / 'other.db'}"
    fourth = execute(project, path, monkeypatch, env={"MLFLOW_TRACKING_URI": other})
    assert not any(fourth["hits"].values())


def test_a_parameter_named_like_a_builtin_invalidates_its_stage(project: Path) -> None:
    write_notebook(project / "nb.ipynb", "%load_ext mlops_nb", "%%track double\ny = max * 2", parameters="max = 5")
    assert mlops_nb("run", "nb.ipynb", cwd=project).returncode == 0
    changed = mlops_nb("run", "nb.ipynb", "-p", "max", "99", "--json", cwd=project)
    assert changed.returncode == 0, changed.stderr
    (stage,) = json.loads(changed.stdout)["stages"]
    assert stage["cache_hit"] is False
