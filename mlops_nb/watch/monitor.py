"""One monitor of a model, end to end: ``mlops-nb monitor`` and ``mnb.monitor`` are thin calls of :func:`watch`.

1. the model URI is resolved once (an alias moving meanwhile changes nothing) and its stored reference
   fetched (``--reference`` overrides it);
2. the current data (``--data`` files or frame, or the serving package's ``--logs``) is read once, in chunks,
   into the result and, with ``--window``, a time series;
3. the monitor's MLflow run is opened (its id goes into the result), the JSON and HTML report written where
   asked and logged into the run with the drift metrics, the run ended and flushed, and the model version
   tagged with the last result (``mlops_nb.monitor.last``);
4. on dataset drift, with a loop configured (``--retrain`` or ``[tool.mlops_nb.monitor.retrain]``), the
   retraining job and the promotion gates (:func:`mlops_nb.jobs.retrain.retrain`); the JSON result gets
   ``retraining``;
5. last, the webhook: its failure is a warning, never a lost report or run, and never changes the outcome.

With ``executor="dask"`` step 2 runs on a Dask cluster (:mod:`mlops_nb.monitoring.distributed`): one task
per file of ``--data``, the same statistics as a local pass.

Without a model URI, step 3 is skipped: the data is checked against ``--reference`` and nothing is recorded.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_nb.config import RetrainSettings
from mlops_nb.exceptions import UsageError
from mlops_nb.monitoring.current import SAMPLE_ROWS, CurrentData
from mlops_nb.monitoring.drift import DEFAULT_PRESET
from mlops_nb.monitoring.monitor import Result
from mlops_nb.watch import webhook as hooks

if TYPE_CHECKING:
    from mlops_nb.tracking.monitor_runs import MonitoredModel

RESULT_FILE = "result.json"
REPORT_FILE = "report.html"
TIMESTAMP = "timestamp"  # the time column of --data when --timestamp is not given
MAX_DRIFTED_IN_SUMMARY = 50


@dataclass
class MonitorOutcome:
    """What one monitor found and where it went. Displays as the HTML report in a notebook."""

    result: Result
    current: CurrentData | None = field(default=None, repr=False)
    model: MonitoredModel | None = None  # the model resolved from MODEL_URI (name, version, run), None without
    run_id: str | None = None
    report: Path | None = None
    json: Path | None = None
    webhook_status: int | None = None  # the HTTP status of the webhook's answer
    retraining: Any = None  # mlops_nb.jobs.retrain.Retraining, when a loop is configured
    warnings: list[str] = field(default_factory=list)

    @property
    def dataset_drift(self) -> bool:
        return bool(self.result["dataset_drift"])

    def summary(self) -> dict[str, Any]:
        """The short form posted to webhooks: verdict, share, drifted features, problem count, run; ``text``
        says it in one line, the field Slack's incoming webhooks (and Mattermost's, Teams' ...) show."""
        drifted = [n for n, f in self.result["features"].items() if f.get("drift")]
        problems = len(self.result["validation"]["problems"])
        model = self.result["model"]
        what = f"{model} version {self.result['version']}" if model else "the data"
        verdict = (
            f"drift in {self.result['drift_share']:.0%} of the features ({', '.join(drifted[:5])}"
            f"{', ...' if len(drifted) > 5 else ''})"
            if self.result["dataset_drift"]
            else f"no dataset drift ({self.result['drift_share']:.0%} of the features drifted)"
        )
        text = (
            f"mlops-nb monitor: {what}, {self.result['rows']} rows: {verdict}; {problems} data problem(s); "
            f"run {self.result['run_id']}"
        )
        return {
            "text": text,
            "model": self.result["model"],
            "version": self.result["version"],
            "run_id": self.result["run_id"],
            "time": _now(),
            "rows": self.result["rows"],
            "dataset_drift": self.result["dataset_drift"],
            "drift_share": self.result["drift_share"],
            "drifted_features": drifted[:MAX_DRIFTED_IN_SUMMARY],
            "problems": problems,
            "report": str(self.report) if self.report else None,
        }

    def html(self) -> str:
        from mlops_nb.monitoring.html import render

        return render(dict(self.result), self.current)

    def _repr_html_(self) -> str:
        return self.html()

    def __repr__(self) -> str:
        r = self.result
        verdict = "drift" if r["dataset_drift"] else "no drift"
        return f"<MonitorOutcome {r['model'] or 'data'}: {verdict} ({r['drift_share']:.0%}), run {self.run_id}>"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _stderr(message: str) -> None:
    print(f"Warning: {message}", file=sys.stderr)


def watch(
    model_uri: str | None = None,
    *,
    data: Any = None,
    logs: str | Path | None = None,
    reference: Any = None,
    labels: str | None = None,
    window: str | None = None,
    timestamp: str | None = None,
    json_out: str | Path | None = None,
    report: str | Path | None = None,
    webhook: str | None = None,
    webhook_timeout: float = hooks.TIMEOUT,
    preset: str = DEFAULT_PRESET,
    sample_rows: int = SAMPLE_ROWS,
    thresholds: dict[str, float] | None = None,
    drift_share: float | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    retrain: RetrainSettings | None = None,
    warn: Callable[[str], None] = _stderr,
) -> MonitorOutcome:
    """Monitor ``data`` (or the prediction ``logs``) against the reference of ``model_uri`` (or ``reference``).

    Args:
        model_uri: ``models:/NAME/VERSION``, ``models:/NAME@ALIAS`` or ``runs:/RUN_ID/PATH``; None: no model,
            no MLflow run (give ``reference``).
        data: the current data: a path (CSV, Parquet, JSON lines; file, folder or glob) or a frame.
        logs: instead of ``data``, the serving package's prediction log folder.
        reference: the training data (path or frame) or a ``reference_profile.json``: overrides the stored one.
        labels: the column of true labels in ``data``: not a feature (left out of drift).
        window: ``1h``, ``1d``, ``10000rows``...: also the drift of each window (``result["windows"]``).
        timestamp: the time column of ``data`` for time windows (default ``timestamp``; logs have theirs).
        json_out: write the JSON result there; report: write the HTML report there.
        webhook: POST the summary there (after everything else; a failure only warns).
        webhook_timeout: seconds per webhook attempt.
        preset: ``mlops-nb`` or ``evidently``.
        sample_rows: rows of each side kept for KS/Wasserstein.
        thresholds: drift thresholds by method over the preset's; drift_share: the dataset's drift share.
        executor: ``local``, or ``dask``: the statistics computed on the Dask cluster at ``scheduler`` over
            the files of ``data`` (no ``logs`` or ``window``).
        retrain: the closed loop, run on dataset drift (needs ``model_uri``: its job is tagged with the
            monitor's run).
        warn: where warnings go (stderr).

    Raises:
        UsageError: bad input, an unknown model, a model without a reference (the message names the fix).
    """
    from mlops_nb.monitoring.windows import parse_window

    if (data is None) == (logs is None):
        raise UsageError("Give the data to check: --data PATH or --logs DIR (one of them).")
    chosen_window = parse_window(window) if window is not None else None
    if webhook is not None:
        hooks.check_url(webhook)
    if model_uri is None and reference is None:
        raise UsageError("Give MODEL_URI (its stored reference is used) or --reference with the training data.")
    _check_executor(executor, scheduler, data, logs, window)
    if retrain is not None and model_uri is None:
        raise UsageError(
            f"--retrain {retrain.notebook.name} needs MODEL_URI: the loop promotes a registered model, and its job "
            "is tagged with the monitor's run. Give the model, e.g. models:/churn@champion."
        )

    model = None
    with tempfile.TemporaryDirectory(prefix="mlops-nb-monitor-") as tmp:
        if model_uri is not None:
            from mlops_nb.tracking import monitor_runs

            model = monitor_runs.resolve(model_uri)
        current, time_column = (None, None) if executor == "dask" else _current(data, logs, timestamp, chosen_window)
        predicted = logs is not None  # the log holds the model's predictions; data may have them as a column
        if current is not None and not predicted:
            predicted, current = _peek_prediction(current)
        ref, scores = _reference(model, reference, Path(tmp), with_prediction=predicted)
        labelled = estimate = None
        if executor == "dask":
            from mlops_nb.monitoring import distributed
            from mlops_nb.monitoring.monitor import summary_result

            summary = distributed.summarise(ref, data, scheduler, sample_rows)
            tuning = {"thresholds": thresholds, "drift_share": drift_share}
            result = summary_result(summary, preset_name=preset, **tuning)  # type: ignore[arg-type]
            outcome = MonitorOutcome(result, summary, model)
        else:
            from mlops_nb.loading.model import TrustedModels
            from mlops_nb.monitoring.monitor import run_pass

            models = TrustedModels(Path(tmp) / "models")  # scoring and predicting share one load of the model
            labelled = _labelled(labels, model, models) if labels else None
            if model is not None:  # --data, or the served model's logged inputs
                estimate = _label_free(model, ref, scores, labels, models, warn)
            observers = [o.add for o in (labelled, estimate) if o is not None]

            def observe(chunk: Any) -> None:  # labels and scores gathered in the drift pass's one read
                for add in observers:
                    add(chunk)

            found = run_pass(
                ref,
                current,
                preset_name=preset,
                sample_rows=sample_rows,
                window=chosen_window,
                time_column=time_column,
                exclude=(labels,) if labels else (),
                thresholds=thresholds,
                drift_share=drift_share,
                observe=observe if observers else None,
                window_observer=labelled.fresh if labelled is not None and chosen_window is not None else None,
            )
            result = found.result
            outcome = MonitorOutcome(result, found.current, model)
        performance = labelled.performance(scores) if labelled is not None else {}
        if estimate is not None:
            try:
                performance["label_free"] = estimate.performance()
            except UsageError as e:  # the drift result stands without it (the data checks say what is wrong)
                if labels:  # asked for: say why it is not there
                    warn(f"No label-free estimate for {model.uri}: {e}")
        result["performance"] = performance or None
        if model is not None:
            result["model"] = model.name or model.uri
            result["version"] = model.version
        if model is None:
            _write(outcome, json_out, report, Path(tmp), source=_source(data, logs))
        else:
            _record(outcome, model, json_out, report, Path(tmp), source=_source(data, logs), warn=warn)
    if retrain is not None:
        from mlops_nb.jobs.retrain import retrain as close_the_loop

        outcome.retraining = close_the_loop(result, retrain, monitor_run_id=outcome.run_id)
        result["retraining"] = outcome.retraining.as_dict()  # type: ignore[typeddict-unknown-key]
        if outcome.json is not None:  # written before the loop ran: now with what it did
            _save(outcome.json, json.dumps(result, indent=2) + "\n", "--json")
    if webhook is not None:
        try:
            outcome.webhook_status = hooks.post(webhook, outcome.summary(), timeout=webhook_timeout)
        except hooks.WebhookError as e:
            outcome.warnings.append(str(e))
            warn(f"{e}; the report and the run are kept.")
    return outcome


def _label_free(model: Any, ref: Any, scores: Any, labels: str | None, models: Any, warn: Callable[[str], None]) -> Any:
    """The scoring behind the classifier's estimated performance without labels (and with ``labels`` the
    realised beside it), when the model was logged with held-out scores (``reference_y=``); else None."""
    if scores is None:
        if labels:
            warn(
                f"--labels {labels}: {model.uri} was logged without held-out scores, so no label-free estimate. "
                "Log it with mnb.log_model(model, name, reference=X_test, reference_y=y_test)."
            )
        return None
    from mlops_nb.monitoring.stored import PREDICTION
    from mlops_nb.watch import scoring

    features = [c for c in ref.profile["columns"] if c not in (labels, PREDICTION)]
    pinned = f"models:/{model.name}/{model.version}" if model.name else model.uri
    try:
        return scoring.start(pinned, scores, features, labels, models)
    except UsageError as e:  # the drift result stands without it
        if labels:  # asked for: say why it is not there
            warn(f"No label-free estimate for {model.uri}: {e}")
        return None


def _check_executor(executor: str, scheduler: str | None, data: Any, logs: Any, window: str | None) -> None:
    if executor not in ("local", "dask"):
        raise UsageError(f"--executor {executor!r}: use local or dask.")
    if executor == "local":
        if scheduler:
            raise UsageError("--scheduler needs --executor dask.")
        return
    if not scheduler:
        raise UsageError("--executor dask needs --scheduler ADDRESS (tcp://host:8786): the cluster to run on.")
    if logs is not None or window is not None or not isinstance(data, (str, Path)):
        raise UsageError(
            "--executor dask reads --data files on the cluster's workers: give --data PATH (a folder or glob of "
            "partitions the workers can read), without --logs or --window."
        )


def _source(data: Any, logs: Any) -> str | None:
    if logs is not None:
        return f"prediction logs {Path(logs).name}"
    return f"data {data}" if isinstance(data, (str, Path)) else None


def _reference(model: Any, reference: Any, tmp: Path, *, with_prediction: bool) -> tuple[Any, Any]:
    """(the reference, the stored labelled scores table or None)."""
    import pyarrow.parquet as pq

    from mlops_nb.monitoring.monitor import load_reference
    from mlops_nb.monitoring.profile import Reference, load_profile, reference_of
    from mlops_nb.monitoring.stored import model_reference
    from mlops_nb.tracking.models import PROFILE_FILE, SAMPLE_FILE, SCORES_FILE

    files = {}
    if model is not None:
        from mlops_nb.tracking import monitor_runs

        files = monitor_runs.fetch_reference(model, tmp / "reference")
    scores = pq.read_table(files[SCORES_FILE]) if SCORES_FILE in files else None
    if isinstance(reference, Reference):
        return reference, scores
    if reference is not None:
        return (load_reference(reference) if isinstance(reference, (str, Path)) else reference_of(reference)), scores
    if PROFILE_FILE not in files:
        raise UsageError(
            f"{model.uri} has no stored reference (reference_profile.json): pass --reference with its training "
            "data, or log the model with mnb.log_model(..., reference=X_train)."
        )
    try:
        profile = load_profile(json.loads(files[PROFILE_FILE].read_text()), f"{model.uri}'s {PROFILE_FILE}")
        sample = pq.read_table(files[SAMPLE_FILE]) if SAMPLE_FILE in files else None
    except (OSError, ValueError) as e:
        raise UsageError(f"{model.uri}: its stored reference cannot be read ({e}). Pass --reference.") from e
    return model_reference(profile, sample, with_prediction=with_prediction), scores


def _labelled(labels: str, model: Any, models: Any) -> Any:
    """The gatherer of ``labels``, predicting rows with the model (loaded on first need) when it must."""
    from mlops_nb.monitoring.labelled import Labelled

    if model is None:
        return Labelled(labels, None)
    pinned = f"models:/{model.name}/{model.version}" if model.name else model.uri

    def predict(table: Any) -> Any:
        # loaded as export loads it: its skops file, only inert types; never a pickle (foreign code)
        estimator = models.get(pinned)
        names = getattr(estimator, "feature_names_in_", None)
        frame = table.to_pandas()
        if names is None:
            return estimator.predict(frame)
        missing = [str(n) for n in names if n not in frame.columns]
        if missing:
            raise UsageError(
                f"--labels {labels}: the model cannot predict these rows, which lack {', '.join(missing[:10])}. Give "
                "data with every input column, or a 'prediction' column."
            )
        return estimator.predict(frame[list(names)])

    return Labelled(labels, predict)


def _current(data: Any, logs: Any, timestamp: str | None, window: Any) -> tuple[Any, str | None]:
    """(the chunks or frame to read, the time column)."""
    if logs is not None:
        from mlops_nb.monitoring.logs import TIME, read_logs

        return read_logs(logs).table, TIME
    if isinstance(data, (str, Path)):
        from mlops_nb.monitoring import data as data_io

        data = data_io.chunks(data)
    if window is not None and window.seconds:
        return data, timestamp or TIMESTAMP
    return data, timestamp


def _peek_prediction(current: Any) -> tuple[bool, Any]:
    """(whether the current data has the model's ``prediction`` column, the data to read): a frame or table
    says so by its columns; of chunks, the first one is read and put back."""
    import itertools

    from mlops_nb.monitoring.stored import PREDICTION

    names = getattr(current, "column_names", None)
    if names is None and hasattr(current, "columns"):
        names = [str(c) for c in current.columns]
    if names is not None:
        return PREDICTION in names, current
    chunks = iter(current)
    first = next(chunks, None)
    if first is None:
        return False, iter(())
    return PREDICTION in first.column_names, itertools.chain([first], chunks)


def _write(outcome: MonitorOutcome, json_out: Any, report: Any, tmp: Path, *, source: str | None) -> list[Path]:
    """Write the JSON result and the HTML report (where asked, else into ``tmp``): the files written."""
    from mlops_nb.monitoring.html import page

    text = json.dumps(outcome.result, indent=2)
    json_path = Path(json_out) if json_out not in (None, "-") else tmp / RESULT_FILE
    report_path = Path(report) if report else tmp / REPORT_FILE
    _save(json_path, text + "\n", "--json")
    if json_out not in (None, "-"):
        outcome.json = json_path
    if report or outcome.result["run_id"]:  # a run always keeps its report
        _save(report_path, page(dict(outcome.result), outcome.current, source=source), "--report")
        if report:
            outcome.report = report_path
    return [json_path, report_path]


def _save(path: Path, text: str, option: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise UsageError(f"{option} {path}: cannot write it ({e.strerror}). Give a writable path.") from e


def _record(
    outcome: MonitorOutcome,
    model: Any,
    json_out: Any,
    report: Any,
    tmp: Path,
    *,
    source: str | None,
    warn: Callable[[str], None],
) -> None:
    """The monitor's MLflow run around writing the files, then the version's tag. MLflow gone since the
    reference came: the files are written all the same (nothing computed is lost), the run kept in the journal
    if it was opened, and a StoreError says so."""
    from mlops_nb.exceptions import StoreError
    from mlops_nb.tracking import monitor_runs

    run: monitor_runs.MonitorRun | None = None
    unreached: StoreError | None = None
    try:
        run = monitor_runs.MonitorRun(model)
        outcome.run_id = outcome.result["run_id"] = run.run_id
    except StoreError as e:
        unreached = e
    try:
        files = _write(outcome, json_out, report, tmp, source=source)
        if run is not None:
            names = []
            for path, name in zip(files, (RESULT_FILE, REPORT_FILE), strict=True):
                if path.name != name:  # logged under fixed names, whatever the user called the files
                    (tmp / name).write_bytes(path.read_bytes())
                    path = tmp / name
                names.append(path)
            run.log(dict(outcome.result), names, outcome.result.get("windows"))
    except BaseException as e:
        if run is not None:
            run.fail(e)
        raise
    if unreached is not None:
        written = " and ".join(str(p) for p in (outcome.json, outcome.report) if p is not None)
        kept = (
            "the monitor run (metrics, result, report) is kept in the journal and sent the next time mlops-nb "
            "starts with this tracking URI"
            if run is not None
            else "no monitor run was recorded"
        )
        raise StoreError(
            f"{unreached} The monitor itself is done: "
            + (f"its result is written to {written}; " if written else "")
            + f"{kept}; {model.label} is not tagged with this result."
        ) from unreached
    if not monitor_runs.flush():
        warn("MLflow did not take the monitor run in time: it stays in the journal and is sent on the next run.")
    last = {
        "run_id": outcome.run_id,
        "time": _now(),
        "dataset_drift": outcome.result["dataset_drift"],
        "drift_share": outcome.result["drift_share"],
    }
    monitor_runs.tag_last_result(model, last)
