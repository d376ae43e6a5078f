"""Tuning: what mlops-nb tune adds to Optuna, against Optuna with optuna-integration's MLflowCallback.

Side by side in one run, medians of --repeat:

1. A trivial objective, --trivial-trials trials in one process, each contender's cost a trial:
   - Optuna alone (in-memory storage), random and TPE samplers: the floor;
   - Optuna's journal file storage alone, and the same file as mlops-nb writes it (no fsync per record);
   - Optuna + ``MLflowCallback`` (a run per trial, SQLite store), the anchor;
   - mlops-nb: the journal-file study plus what ``mlops-nb tune`` records per trial (the trial's owner and
     job run, a ``job`` run nested under a ``study`` run with its params, metric and state tag), blocking
     time per trial, and with the final flush into MLflow included.
   The overhead is each contender's time a trial minus Optuna alone's (same sampler). With --wait-ms W each
   trial also waits W ms (sleeps), as the study's process does while a notebook trial runs in a kernel: what
   mlops-nb sends to MLflow in the background then overlaps the trials instead of competing with a loop that
   never waits (both contenders and the floor wait alike).
2. The example notebook (notebooks/train.ipynb less its mnb.evaluate report, which the loop cannot make;
   C = loguniform(1e-3, 1e2)), --notebook-trials trials,
   random sampler, seed 0: ``mlops-nb tune --parallel 2`` (a fresh process, start to exit) against a loop
   of ``papermill.execute_notebook`` calls driven by Optuna with ``MLflowCallback`` (the notebook without
   mlops-nb's magics, its metrics read back from a file). Same sampler and seed: the same points, so the
   same best value.

Run: python benchmarks/bench_tune.py [--trivial-trials 200] [--notebook-trials 30] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "train.ipynb"


WAIT = 0.0  # seconds each trial waits (--wait-ms): its work done elsewhere, as a notebook trial's kernel does


def objective(trial) -> float:
    x = trial.suggest_float("x", -10, 10)
    if WAIT:
        time.sleep(WAIT)
    return (x - 2) ** 2


def _sampler(name: str):
    import optuna

    return optuna.samplers.RandomSampler(seed=0) if name == "random" else optuna.samplers.TPESampler(seed=0)


def optuna_alone(n: int, sampler: str, folder: Path, journal: str = "") -> float:
    """Optuna alone: in memory; or on Optuna's own journal file (``journal="optuna"``), or on mlops-nb's
    (``"mlops-nb"``: the same file, no fsync per record)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from mlops_nb.jobs.study import storage

    stores = {
        "": lambda: None,
        "optuna": lambda: JournalStorage(JournalFileBackend(str(folder / "optuna.journal"))),
        "mlops-nb": lambda: storage(folder / "mlops-nb.journal"),
    }
    st = optuna.create_study(storage=stores[journal](), sampler=_sampler(sampler))
    start = time.perf_counter()
    st.optimize(objective, n_trials=n)
    return (time.perf_counter() - start) / n


def mlflow_callback(n: int, sampler: str, folder: Path) -> float:
    import optuna
    from optuna_integration.mlflow import MLflowCallback

    uri = f"sqlite:///{folder / 'callback.db'}"
    callback = MLflowCallback(tracking_uri=uri, metric_name="value")
    st = optuna.create_study(sampler=_sampler(sampler))
    st.optimize(objective, n_trials=3, callbacks=[callback])  # MLflow loaded, the store migrated: not timed
    start = time.perf_counter()
    st.optimize(objective, n_trials=n, callbacks=[callback])
    return (time.perf_counter() - start) / n


def mlops_nb_records(n: int, sampler: str, folder: Path) -> tuple[float, float]:
    """mlops-nb tune's records of a trial, around the same objective: (blocking, with the final flush)."""
    import optuna

    from mlops_nb.jobs import study as study_mod
    from mlops_nb.jobs.space import parse_space
    from mlops_nb.tracking import tags
    from mlops_nb.tracking.recorder import configure, get_recorder
    from mlops_nb.tracking.runs import open_run

    configure(home=str(folder / ".mlops_nb"), tracking_uri=f"sqlite:///{folder / 'ours.db'}")
    recorder = get_recorder()
    recorder.connect_now()
    space = parse_space(["x=uniform(-10,10)"])
    dists = {name: dim.optuna() for name, dim in space.items()}
    st = study_mod.open_study(
        study_mod.journal_path(folder / ".mlops_nb", f"bench-{sampler}"), f"bench-{sampler}", space, "value",
        "minimize", _sampler(sampler), optuna.pruners.NopPruner(),
    )  # fmt: skip
    study = open_run("bench study", experiment="bench", kind="study", tags={tags.STUDY: "bench"})
    owner = study_mod.owner()
    recorder.flush(120)  # MLflow loaded, the store migrated: not timed
    start = time.perf_counter()
    for _ in range(n):
        trial = st.ask(dists)
        trial.set_user_attr(study_mod.OWNER, owner)
        job = open_run(f"bench[trial {trial.number}]", experiment="bench", kind="job", parent_key=study.key,
                       tags={tags.STUDY: "bench", tags.TRIAL: str(trial.number)})  # fmt: skip
        job.log_params(trial.params)
        if WAIT:
            time.sleep(WAIT)
        value = (trial.params["x"] - 2) ** 2
        job.log_metric("value", value)
        job.end()
        trial.set_user_attr(study_mod.RUN, {"key": job.key, "id": ""})
        st.tell(trial, value)
        recorder.set_tag(job.key, tags.TRIAL_STATE, "COMPLETE")
    blocking = time.perf_counter() - start
    study.end()
    recorder.flush(600)
    return blocking / n, (time.perf_counter() - start) / n


def contest_notebook(folder: Path) -> Path:
    """notebooks/train.ipynb without its quality report (``mnb.evaluate``: plots, SHAP, slices), which the
    papermill loop cannot make: both contenders train and score the same model."""
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:
        if "mnb.evaluate(" in cell.source:
            cell.source = cell.source[: cell.source.index("# The quality report")].rstrip()
    path = folder / "train.ipynb"
    nbformat.write(nb, path)
    return path


def anchor_notebook(folder: Path) -> Path:
    """The contest's notebook without mlops-nb: no magics; its metrics written to metrics.json."""
    import nbformat

    nb = nbformat.read(contest_notebook(folder), as_version=4)
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        lines = [line for line in cell.source.splitlines() if not line.startswith(("%%track", "%load_ext", "%mlops"))]
        source = "\n".join(lines).replace("import mlops_nb as mnb", "import json")
        source = source.replace("mnb.log_metrics(", "json.dump(fp=open('metrics.json', 'w'), obj=")
        if "mnb.log_model" in source:
            source = source[: source.index("mnb.log_model")]
        cell.source = source
        cells.append(cell)
    nb.cells = cells
    path = folder / "plain.ipynb"
    nbformat.write(nb, path)
    return path


PAPERMILL_LOOP = """
import json, sys, time
import optuna, papermill
from optuna_integration.mlflow import MLflowCallback
optuna.logging.set_verbosity(optuna.logging.WARNING)
notebook, trials, uri = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def objective(trial):
    C = trial.suggest_float("C", 1e-3, 1e2, log=True)
    papermill.execute_notebook(notebook, "out.ipynb", parameters={"C": C}, kernel_name="python3", progress_bar=False)
    with open("metrics.json") as f:
        return json.load(f)["accuracy"]

study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
study.optimize(objective, n_trials=trials, callbacks=[MLflowCallback(tracking_uri=uri, metric_name="accuracy")])
print(json.dumps({"best": study.best_value, "params": study.best_params}))
"""


def notebook_contest(trials: int, parallel: int, folder: Path) -> dict[str, tuple[float, float]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLOPS_NB_"))}
    ours = folder / "ours"
    ours.mkdir()
    contest_notebook(ours)
    cli = str(Path(sys.executable).parent / "mlops-nb")
    args = [cli, "tune", "train.ipynb", "--space", "C=loguniform(1e-3,1e2)", "--sampler", "random", "--seed", "0"]
    args += ["--trials", str(trials), "--parallel", str(parallel), "--metric", "accuracy", "--json", "study.json"]
    start = time.perf_counter()
    done = subprocess.run(args, cwd=ours, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"mlops-nb tune failed: {done.stderr[-3000:]}")
    best = json.loads((ours / "study.json").read_text())["best"]["value"]
    plain = folder / "plain"
    plain.mkdir()
    path = anchor_notebook(plain)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PAPERMILL_LOOP), str(path), str(trials), f"sqlite:///{plain}/mlflow.db"],
        cwd=plain, env=env, capture_output=True, text=True,
    )  # fmt: skip
    anchor = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"the papermill loop failed: {done.stderr[-3000:]}")
    anchor_best = json.loads(done.stdout.strip().splitlines()[-1])["best"]
    return {"mlops-nb tune": (took, best), "papermill + MLflowCallback": (anchor, anchor_best)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trivial-trials", type=int, default=200, help="0 skips the trivial objective")
    parser.add_argument("--notebook-trials", type=int, default=30, help="0 skips the notebook contest")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--wait-ms", type=float, default=0.0, help="each trivial trial also waits this long (its work elsewhere)"
    )
    args = parser.parse_args()
    global WAIT
    WAIT = args.wait_ms / 1000
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n = args.trivial_trials
    waits = f", each waiting {args.wait_ms:g} ms" if WAIT else ""
    print(f"1. trivial objective, {n} trials{waits}, ms a trial (medians of {args.repeat}; {os.cpu_count()} cores)")
    print(f"   load average before: {os.getloadavg()}")
    for sampler in ("random", "tpe") if n else ():
        times: dict[str, list[float]] = {}
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="bench-tune-") as tmp:
                folder = Path(tmp)
                times.setdefault("optuna alone", []).append(optuna_alone(n, sampler, folder))
                times.setdefault("optuna journal file", []).append(optuna_alone(n, sampler, folder, "optuna"))
                times.setdefault("mlops-nb's journal file", []).append(optuna_alone(n, sampler, folder, "mlops-nb"))
                times.setdefault("optuna + MLflowCallback", []).append(mlflow_callback(n, sampler, folder))
                blocking, flushed = _in_subprocess(n, sampler, folder)
                times.setdefault("mlops-nb (blocking)", []).append(blocking)
                times.setdefault("mlops-nb (flushed)", []).append(flushed)
        medians = {k: statistics.median(v) * 1000 for k, v in times.items()}
        floor = medians["optuna alone"]
        callback = medians["optuna + MLflowCallback"] - floor
        print(f"  sampler {sampler}")
        for name, ms in medians.items():
            over = ms - floor
            ratio = f"  {callback / over:6.1f}x less than MLflowCallback" if name.startswith("mlops-nb (") else ""
            print(f"    {name:<26} {ms:8.2f} ms   overhead {over:8.2f} ms{ratio}")
    if args.notebook_trials:
        t = args.notebook_trials
        print(f"2. notebooks/train.ipynb, {t} trials, random sampler seed 0, seconds (medians of {args.repeat})")
        runs: dict[str, list[tuple[float, float]]] = {}
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="bench-tune-nb-") as tmp:
                for name, value in notebook_contest(t, args.parallel, Path(tmp)).items():
                    runs.setdefault(name, []).append(value)
        medians = {k: statistics.median(s for s, _ in v) for k, v in runs.items()}
        for name, seconds in medians.items():
            print(f"    {name:<28} {seconds:8.1f} s   best accuracy {runs[name][0][1]:.4f}")
        ratio = medians["papermill + MLflowCallback"] / medians["mlops-nb tune"]
        print(f"    wall-clock ratio (papermill loop / mlops-nb tune --parallel {args.parallel}): {ratio:.2f}x")


def _in_subprocess(n: int, sampler: str, folder: Path) -> tuple[float, float]:
    """mlops-nb's records in a fresh process (its recorder and settings are per process)."""
    code = f"import json, sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); import bench_tune as b; "
    code += f"b.WAIT = {WAIT!r}; "
    code += f"print(json.dumps(b.mlops_nb_records({n}, {sampler!r}, __import__('pathlib').Path({str(folder)!r}))))"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLOPS_NB_"))}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=folder)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    blocking, flushed = json.loads(done.stdout.strip().splitlines()[-1])
    return blocking, flushed


if __name__ == "__main__":
    main()
