"""Planning journaled records into MLflow calls, and making the calls.

``plan`` orders a batch of records into steps (create run, ``log_batch`` per run within MLflow's limits,
upload artifact, end run); an ``Executor`` makes each step's calls against one store. A transient failure
(connection lost, server busy, database locked) propagates: ``run_all`` retries from the step that failed. A
record MLflow refuses for what it is (a 4xx answer, a name or value it does not accept, text it cannot
encode) is never retried: it is set aside in the dead-letter file with the reason (``deadletter.py``), and
the steps after it go on, so the other records of its batch arrive and its run still ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_nb.exceptions import StoreError, TrackingError
from mlops_nb.redaction import RedactingFilter
from mlops_nb.tracking import tags as tag_names
from mlops_nb.tracking.deadletter import DeadLetter
from mlops_nb.tracking.provenance import Provenance
from mlops_nb.tracking.store import Store, is_transient
from mlops_nb.tracking.validation import MAX_TAG_VALUE, check_text, escaped

log = logging.getLogger("mlops_nb")
log.addFilter(RedactingFilter())  # MLflow's errors quoted in our warnings repeat the URI, credentials and all

MAX_METRICS = 1000  # MLflow's log_batch limits
MAX_PARAMS_TAGS = 100
RUN_KEY_TAG = tag_names.RUN_KEY
BACKOFF = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


@dataclass
class Step:
    """One MLflow call (or a small group of them) for one run."""

    kind: str  # create | batch | artifact | text | link | model | end
    run: str
    record: dict[str, Any] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def plan(records: Iterable[dict[str, Any]]) -> list[Step]:
    """Order a batch of records into steps, coalescing a run's params, metrics and tags into log_batch."""
    steps: list[Step] = []
    buffers: dict[str, Step] = {}

    def buffer(run: str) -> Step:
        if run not in buffers:
            buffers[run] = Step("batch", run)
        return buffers[run]

    def drain(run: str) -> None:
        if run in buffers:
            steps.extend(_split(buffers.pop(run)))

    for rec in records:
        op, run = rec["op"], rec["run"]
        if op == "start":
            steps.append(Step("create", run, rec))
        elif op == "param":
            buffer(run).params[rec["k"]] = rec["v"]
        elif op == "tag":
            buffer(run).tags[rec["k"]] = rec["v"]
        elif op == "metric":
            metric = {"k": rec["k"], "v": rec["v"], "t": rec["t"], "step": rec["step"]}
            buffer(run).metrics.append(metric)
            if rec.get("rollup"):
                buffer(rec["rollup"]).metrics.append(metric)
        elif op in ("artifact", "text", "link", "model"):
            steps.append(Step(op, run, rec))
        elif op == "end":
            drain(run)
            steps.append(Step("end", run, rec))
    for run in list(buffers):
        drain(run)
    return steps


def _split(step: Step) -> list[Step]:
    """Cut a run's buffered entities into log_batch calls within MLflow's limits."""
    out = []
    params, tags, metrics = list(step.params.items()), list(step.tags.items()), step.metrics
    while params or tags or metrics:
        out.append(
            Step(
                "batch",
                step.run,
                params=dict(params[:MAX_PARAMS_TAGS]),
                tags=dict(tags[:MAX_PARAMS_TAGS]),
                metrics=metrics[: MAX_METRICS - min(len(params), MAX_PARAMS_TAGS) - min(len(tags), MAX_PARAMS_TAGS)],
            )
        )
        n_metrics = len(out[-1].metrics)
        params, tags, metrics = params[MAX_PARAMS_TAGS:], tags[MAX_PARAMS_TAGS:], metrics[n_metrics:]
    return out


Entity = tuple[str, str, Any]  # ("param" | "tag", key, value) or ("metric", key, {"k", "v", "t", "step"})


def _entities(step: Step) -> list[Entity]:
    return [
        *(("param", k, v) for k, v in step.params.items()),
        *(("tag", k, v) for k, v in step.tags.items()),
        *(("metric", m["k"], m) for m in step.metrics),
    ]


def _record(entity: Entity) -> dict[str, Any]:
    op, key, value = entity
    return value if op == "metric" else {"k": key, "v": value}


def refused(error: BaseException) -> bool:
    """MLflow refused the record for what it is (a 4xx answer, a name or value it does not accept, text it
    cannot encode): retrying cannot help."""
    from mlflow.exceptions import MlflowException

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, UnicodeError) or "codec can't encode" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return isinstance(error, (MlflowException, TrackingError)) and not is_transient(error)


class Executor:
    """Runs planned steps against one MLflow store, remembering local run keys -> MLflow run ids.

    ``source`` names the journal the records come from (in the dead-letter file)."""

    def __init__(
        self,
        store: Store,
        run_ids: dict[str, str],
        provenance: Provenance,
        on_created: Callable[[str, str], None],
        source: str,
    ) -> None:
        self.store = store
        self.run_ids = run_ids
        self._provenance = provenance
        self._on_created = on_created
        self._source = source
        self.dead_letter = DeadLetter(store.home, store.tracking_uri)
        self.rejected: dict[str, str] = {}  # run key -> why its run could not be created
        self.set_aside: dict[str, int] = {}  # run key -> how many of its records are in the dead-letter file
        self._first_reason: dict[str, str] = {}

    def execute(self, step: Step) -> None:
        """Do one step. Transient errors propagate (the caller retries); refused records are set aside."""
        before = self.set_aside.get(step.run, 0)
        try:
            if step.run in self.rejected:
                self._set_aside_step(step, f"its run could not be created: {self.rejected[step.run]}")
            elif step.kind != "create" and self.resolve(step.run) is None:
                self._set_aside_step(step, "its run was never started (no record created it)")
            else:
                try:
                    getattr(self, f"_{step.kind}")(step)
                except Exception as e:
                    if not refused(e):
                        raise
                    if step.kind == "create":
                        self.rejected[step.run] = str(e)
                    self._set_aside_step(step, str(e))
        finally:
            if self.set_aside.get(step.run, 0) > before:
                self._note_on_run(step.run)

    # --- setting refused records aside --------------------------------------------------------------------
    def _put_aside(self, run: str, op: str, record: Any, reason: str) -> None:
        run_id = self.run_ids.get(run)
        self.dead_letter.add(journal=self._source, run=run, run_id=run_id, op=op, record=record, reason=reason)
        count = self.set_aside[run] = self.set_aside.get(run, 0) + 1
        if count == 1:
            self._first_reason[run] = reason
            log.warning(
                "mlops-nb: MLflow refused a %s record of run %s; it is kept, with the reason, in %s: %s",
                op,
                run_id or run,
                self.dead_letter.path,
                reason,
            )

    def _set_aside_step(self, step: Step, reason: str) -> None:
        if step.kind == "batch":
            for entity in _entities(step):
                self._put_aside(step.run, entity[0], _record(entity), reason)
            step.params, step.tags, step.metrics = {}, {}, []
        else:
            self._put_aside(step.run, step.kind, step.record, reason)

    def _note_on_run(self, run: str) -> None:
        """Say on the run itself (tag ``mlops_nb.dead_letter``) that some of its records were set aside."""
        run_id = self.run_ids.get(run)
        if run_id is None or run in self.rejected:
            return
        text = escaped(
            f"{self.set_aside[run]} record(s) MLflow refused are kept in {self.dead_letter.path} "
            f"(first: {self._first_reason[run]})"
        )[:MAX_TAG_VALUE]
        try:
            self.store.client.set_tag(run_id, tag_names.DEAD_LETTER, text)
        except Exception as e:  # noqa: BLE001 - the records are in the file; the note on the run is a courtesy
            log.warning("mlops-nb: could not tag run %s with its set-aside records: %r", run_id, e)

    # --- the steps -------------------------------------------------------------------------------------
    def resolve(self, key: str) -> str | None:
        """The MLflow id of the run with mlops-nb key ``key``: known here, or created by another process (a
        job's run, which the job's kernel records into; a cache hit's source run)."""
        run_id = self.run_ids.get(key)
        if run_id is None:
            client = self.store.client
            experiments = [e.experiment_id for e in client.search_experiments()]
            found = client.search_runs(experiments, f"tags.`{RUN_KEY_TAG}` = '{key}'", max_results=1)
            if found:
                run_id = self.run_ids[key] = found[0].info.run_id
        return run_id

    def _create(self, step: Step) -> None:
        rec = step.record
        if step.run in self.run_ids:
            return
        # Journals older than the check at the call may hold names made of undecodable file names.
        exp_id = self.store.experiment_id(escaped(rec["exp"]))
        client = self.store.client
        # A replay of a run whose "created" line was lost: find it rather than create it twice.
        found = (
            client.search_runs([exp_id], filter_string=f"tags.`{RUN_KEY_TAG}` = '{step.run}'", max_results=1)
            if rec.get("replay")
            else []
        )
        if found:
            run_id = found[0].info.run_id
        else:
            given = {k: escaped(v) for k, v in rec.get("tags", {}).items()}
            tags = {**self._provenance.tags(rec), **given, RUN_KEY_TAG: step.run}
            if rec.get("parent"):
                parent = self.resolve(rec["parent"])
                if parent is None:
                    raise StoreError(f"its parent run {rec['parent']} was never created")
                tags["mlflow.parentRunId"] = parent
            name = escaped(rec["name"]) if rec.get("name") else rec.get("name")
            run_id = client.create_run(exp_id, start_time=rec["t"], tags=tags, run_name=name).info.run_id
        self.run_ids[step.run] = run_id
        self._on_created(step.run, run_id)
        for text, artifact_file in self._provenance.texts(rec):
            client.log_text(run_id, text, artifact_file)

    def _batch(self, step: Step) -> None:
        """log_batch. A batch MLflow refuses is cut in halves until each refused record stands alone and is set
        aside: its valid neighbours always arrive. What was sent is taken out of ``step`` as it goes, so when a
        transient error propagates (the step is retried) nothing is sent twice."""
        parts = [_entities(step)]
        try:
            while parts:
                part = parts[-1]
                try:
                    self._log_batch(step.run, part)
                except Exception as e:
                    if not refused(e):
                        raise
                    if len(part) > 1:
                        half = len(part) // 2
                        parts[-1:] = [part[half:], part[:half]]  # the first half next
                        continue
                    self._put_aside(step.run, part[0][0], _record(part[0]), str(e))
                parts.pop()
        finally:
            left = [entity for part in parts for entity in part]
            step.params = {k: v for op, k, v in left if op == "param"}
            step.tags = {k: v for op, k, v in left if op == "tag"}
            step.metrics = [v for op, _, v in left if op == "metric"]

    def _log_batch(self, run: str, entities: list[Entity]) -> None:
        from mlflow.entities import Metric, Param, RunTag

        for op, key, _ in entities:  # a name no store can hold is refused here, before any call
            check_text(f"The {op} name {key!r}", key)
        # Values as the call writes them now (journals older than that may hold lone surrogates).
        self.store.client.log_batch(
            self.run_ids[run],
            metrics=[Metric(m["k"], m["v"], m["t"], m["step"]) for op, _, m in entities if op == "metric"],
            params=[Param(k, escaped(v)) for op, k, v in entities if op == "param"],
            tags=[RunTag(k, escaped(v)) for op, k, v in entities if op == "tag"],
            synchronous=True,
        )

    def _artifact(self, step: Step) -> None:
        rec = step.record
        path = Path(rec["path"])
        if not path.exists():
            log.warning("mlops-nb: the copy of artifact %s is gone from the journal; skipped", path.name)
            return
        if rec.get("dest"):
            check_text("The artifact path", rec["dest"])
        if path.is_dir():
            self.store.client.log_artifacts(self.run_ids[step.run], str(path), rec.get("dest"))
        else:
            self.store.client.log_artifact(self.run_ids[step.run], str(path), rec.get("dest"))

    def _text(self, step: Step) -> None:
        text, artifact_file = step.record["text"], step.record["file"]
        check_text("The artifact name", artifact_file)
        self.store.client.log_text(self.run_ids[step.run], escaped(text), artifact_file)

    def _model(self, step: Step) -> None:
        from mlops_nb.tracking.models import save_sklearn_model

        run_id, name = self.run_ids[step.run], step.record["name"]
        try:
            save_sklearn_model(self.store.client, run_id, Path(step.record["path"]), name)
        except Exception as e:
            if is_transient(e):
                raise
            # The model itself cannot be saved (an estimator MLflow's format refuses): retrying cannot help,
            # and must not hold back the records behind it.
            log.warning("mlops-nb: model %r of run %s could not be saved: %r", name, run_id, e)
            self.store.client.set_tag(run_id, "mlops_nb.model_error", f"{name}: {type(e).__name__}: {e}"[:5000])

    def _link(self, step: Step) -> None:
        """Tag a run with the MLflow id of another run known by its mlops-nb key (a cache hit's source)."""
        ref = step.record["ref"]
        run_id = self.resolve(ref)
        if run_id is None:
            log.warning("mlops-nb: no run has the key %s; %s not set", ref, step.record["k"])
            return
        self.store.client.set_tag(self.run_ids[step.run], step.record["k"], run_id)

    def _end(self, step: Step) -> None:
        self.store.client.set_terminated(self.run_ids[step.run], step.record["status"], step.record["t"])

    def run_all(
        self, steps: list[Step], give_up: Callable[[], bool], on_error: Callable[[BaseException], None]
    ) -> bool:
        """Execute steps in order, retrying transient failures with backoff. False if ``give_up()`` said so."""
        i = attempt = 0
        while i < len(steps):
            try:
                self.execute(steps[i])
            except Exception as e:  # noqa: BLE001 - anything unexpected is retried, never lost
                if attempt == 0 and not is_transient(e):
                    log.warning("mlops-nb: unexpected error while sending to MLflow (retrying): %r", e)
                on_error(e)
                if give_up():
                    return False
                time.sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])
                attempt += 1
                continue
            i += 1
            attempt = 0
        return True
