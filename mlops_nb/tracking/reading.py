"""The read side: what a notebook recorded, as our own records (``records.py``), never MLflow objects.

``mlops-nb runs / show / diff / lineage``, the JupyterLab server and the monitor read through these
functions. A page of runs costs one search of that page (MLflow's own paging, newest first), whatever the
size of the experiment.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_nb.config import Settings, load_settings
from mlops_nb.exceptions import UsageError
from mlops_nb.tracking import fastread, tags
from mlops_nb.tracking._client import client as _client
from mlops_nb.tracking.errors import map_mlflow_errors
from mlops_nb.tracking.filters import literal
from mlops_nb.tracking.records import (
    ArtifactRecord,
    Lineage,
    ModelDetail,
    ModelList,
    ModelSummary,
    ModelVersionRecord,
    ModelVersionSummary,
    RunDetail,
    RunPage,
    RunRecord,
    RunSummary,
    StageSummary,
    stage_record,
    summary_record,
)
from mlops_nb.tracking.registry import LOCK_SUFFIX  # a promotion's lock: a model never to show

if TYPE_CHECKING:
    from mlflow.entities import Run as MlflowRun

MAX_PAGE = 1000
CODE_ARTIFACT = "stage/code.py"
_RUN_FIX = "Check the run id (mlops-nb runs lists them) and that MLFLOW_TRACKING_URI names the store that recorded it."


def _summary(run: MlflowRun) -> RunSummary:
    info, data = run.info, run.data
    return summary_record(
        info.run_id,
        info.run_name,
        info.experiment_id,
        info.status,
        info.start_time,
        info.end_time,
        data.tags,
        dict(data.params),
        dict(data.metrics),
    )


def _record(run: MlflowRun) -> RunRecord:
    return RunRecord(**_summary(run), tags=dict(run.data.tags))


def _stage(run: MlflowRun) -> StageSummary:
    info, data = run.info, run.data
    return stage_record(
        info.run_id, info.run_name, info.status, info.start_time, data.tags, dict(data.params), dict(data.metrics)
    )


def _experiment_ids(client: Any, experiment: str | None, uri: str) -> list[str]:
    with map_mlflow_errors("listing experiments", fix="", uri=uri):
        if experiment is None:
            return [e.experiment_id for e in client.search_experiments(max_results=MAX_PAGE)]
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            return [found.experiment_id]
        names = [e.name for e in client.search_experiments(max_results=MAX_PAGE)]
    import difflib

    close = difflib.get_close_matches(experiment, names, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else f" Experiments: {', '.join(sorted(names)[:20]) or 'none yet'}."
    raise UsageError(f"No experiment {experiment!r} in MLflow at {uri}.{hint}")


def list_runs(
    notebook: str | None = None,
    *,
    experiment: str | None = None,
    kind: str | None = None,
    max_results: int = 100,
    page_token: str | None = None,
    settings: Settings | None = None,
) -> RunPage:
    """The top-level runs (not stages), newest first, one page at a time.

    Args:
        notebook: only the runs of this notebook (its path, or the end of it: ``train.ipynb``).
        experiment: only this experiment's runs (default: every experiment).
        kind: ``notebook``, ``job``, ``sweep``, ``script`` or ``monitor`` (default: all but stages).
        max_results: the page size, 1 to 1,000.
        page_token: the ``next_page_token`` of the previous page.
    """
    if kind is not None and kind not in tags.TOP_LEVEL_KINDS:
        raise UsageError(f"--kind takes one of {', '.join(tags.TOP_LEVEL_KINDS)}, got {kind!r}")
    if not 1 <= max_results <= MAX_PAGE:
        raise UsageError(f"--limit takes 1 to {MAX_PAGE}, got {max_results}")
    try:
        fastread.decode_token(page_token)  # MLflow's stores page the same way: refused here for every store
    except fastread.Unavailable:
        raise UsageError(
            f"{page_token[:80]!r} is not a page token of this listing: give the next_page_token of the previous "
            "page (none for the first page)."
        ) from None
    s = settings or load_settings()
    path = notebook.removeprefix("./") if notebook else None
    db = fastread.sqlite_path(s.tracking_uri)
    if db is not None:
        try:
            page = fastread.list_runs(
                db, experiment=experiment, kind=kind, notebook=path, max_results=max_results, page_token=page_token
            )
        except fastread.Unavailable:
            pass  # MLflow's own search answers the same question, slower
        else:
            if page is not None:
                return page
            _experiment_ids(_client(s), experiment, s.tracking_uri)  # raises: no such experiment, did you mean
    filters = [f"tags.`{tags.KIND}` = '{kind}'" if kind else f"tags.`{tags.KIND}` != 'stage'"]
    if path:
        filters.append(f"tags.`{tags.NOTEBOOK}` LIKE {literal('%' + path, 'notebook path')}")
    return _search(s, filters, experiment, max_results, page_token)


def _search(
    s: Settings, filters: list[str], experiment: str | None, max_results: int, page_token: str | None
) -> RunPage:
    client = _client(s)
    ids = _experiment_ids(client, experiment, s.tracking_uri)
    if not ids:
        return RunPage(runs=[], next_page_token=None)
    with map_mlflow_errors("searching runs", fix="Check --experiment and the page token.", uri=s.tracking_uri):
        page = client.search_runs(
            ids,
            filter_string=" and ".join(filters),
            max_results=max_results,
            order_by=["attributes.start_time DESC"],
            page_token=page_token,
        )
    token = page.token.decode() if isinstance(page.token, bytes) else page.token  # the SQL store's are bytes
    return RunPage(runs=[_summary(r) for r in page], next_page_token=token or None)


def _get_run(client: Any, run_id: str, uri: str) -> MlflowRun:
    with map_mlflow_errors(f"No run {run_id!r}", fix=_RUN_FIX, uri=uri):
        return client.get_run(run_id)


def _stages(client: Any, run: MlflowRun, uri: str) -> list[StageSummary]:
    with map_mlflow_errors(f"reading the stages of run {run.info.run_id}", fix=_RUN_FIX, uri=uri):
        children = client.search_runs(
            [run.info.experiment_id],
            filter_string=f"tags.`{tags.PARENT}` = '{run.info.run_id}' and tags.`{tags.KIND}` = 'stage'",
            max_results=MAX_PAGE,
            order_by=["attributes.start_time ASC"],
        )
    return [_stage(c) for c in children]


_PREFIX = re.compile(r"[0-9a-f]{1,31}")
MIN_PREFIX = 4
_CANDIDATES = 10


def resolve_run_id(run_id: str, settings: Settings | None = None) -> str:
    """The full id of the one run whose id starts with ``run_id`` (the 8 characters the tables show), or
    ``run_id`` itself when it is no shorter prefix of hex digits (a full id costs no read).

    Raises:
        UsageError: no run, or several, start with the prefix (the message names the candidates).
    """
    if not _PREFIX.fullmatch(run_id):
        return run_id
    if len(run_id) < MIN_PREFIX:
        raise UsageError(f"Run id {run_id!r} is too short: give at least {MIN_PREFIX} of its characters.")
    from mlflow.entities import ViewType

    s = settings or load_settings()
    client = _client(s)
    with map_mlflow_errors(f"looking up run ids starting with {run_id!r}", fix=_RUN_FIX, uri=s.tracking_uri):
        ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL, max_results=MAX_PAGE)]
        found = (
            client.search_runs(
                ids,
                filter_string=f"attributes.run_id LIKE '{run_id}%'",
                run_view_type=ViewType.ALL,
                max_results=_CANDIDATES + 1,
                order_by=["attributes.start_time DESC"],
            )
            if ids
            else []
        )
    if len(found) == 1:
        return found[0].info.run_id
    if not found:
        raise UsageError(f"No run id starts with {run_id!r}. {_RUN_FIX}")
    listed = "".join(f"\n  {r.info.run_id}  {r.info.run_name or ''}" for r in found[:_CANDIDATES])
    more = "\n  ..." if len(found) > _CANDIDATES else ""
    raise UsageError(f"Run id {run_id!r} is ambiguous: give more of it. Runs whose id starts so:{listed}{more}")


def get_run(run_id: str, settings: Settings | None = None) -> RunRecord:
    """One run with its tags (no stages: one read). ``run_id`` may be a unique prefix. UsageError for an
    unknown id."""
    s = settings or load_settings()
    return _record(_get_run(_client(s), resolve_run_id(run_id, s), s.tracking_uri))


def child_runs(run_id: str, settings: Settings | None = None) -> list[RunRecord]:
    """The runs nested directly under ``run_id`` (stages of a notebook/job, jobs of a sweep), oldest first."""
    s = settings or load_settings()
    client = _client(s)
    parent = _get_run(client, run_id, s.tracking_uri)
    with map_mlflow_errors(f"reading the runs under run {run_id}", fix=_RUN_FIX, uri=s.tracking_uri):
        runs = client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.`{tags.PARENT}` = '{run_id}'",
            max_results=50_000,
            order_by=["attributes.start_time ASC"],
        )
    return [_record(r) for r in runs]


def run_detail(run_id: str, settings: Settings | None = None) -> RunDetail:
    """One run with its tags and stages (oldest first). ``run_id`` may be a unique prefix. UsageError for an
    unknown id."""
    s = settings or load_settings()
    run_id = resolve_run_id(run_id, s)
    db = fastread.sqlite_path(s.tracking_uri)
    if db is not None:
        try:
            detail = fastread.run_detail(db, run_id)
        except fastread.Unavailable:
            detail = None  # MLflow's own reads answer the same question, slower
        if detail is not None:
            return detail
    return _mlflow_detail(s, run_id)


def _mlflow_detail(s: Settings, run_id: str) -> RunDetail:
    client = _client(s)
    run = _get_run(client, run_id, s.tracking_uri)
    with map_mlflow_errors("reading the experiment", fix=_RUN_FIX, uri=s.tracking_uri):
        experiment = client.get_experiment(run.info.experiment_id).name
    return RunDetail(
        **_record(run),
        experiment=experiment,
        stages=_stages(client, run, s.tracking_uri),
        deleted=run.info.lifecycle_stage == "deleted",
    )


def stage_code(stage_run_id: str, settings: Settings | None = None) -> str:
    """The code a stage ran (its ``stage/code.py`` artifact); '' when the run has none."""
    s = settings or load_settings()
    client = _client(s)
    with tempfile.TemporaryDirectory(prefix="mlops-nb-code-") as tmp:
        try:
            with map_mlflow_errors(f"the code of stage run {stage_run_id}", fix=_RUN_FIX, uri=s.tracking_uri):
                path = client.download_artifacts(stage_run_id, CODE_ARTIFACT, tmp)
        except UsageError:
            return ""
        return Path(path).read_text(encoding="utf-8")


def _version_record(version: Any) -> ModelVersionRecord:
    return ModelVersionRecord(
        name=version.name,
        version=str(version.version),
        aliases=list(version.aliases or []),
        run_id=version.run_id,
        source=version.source,
        status=str(version.status),
        creation_time=int(version.creation_timestamp or 0),
        tags=dict(version.tags or {}),
    )


def model_version(model_uri: str, settings: Settings | None = None) -> ModelVersionRecord:
    """The registered version ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` names (resolved once)."""
    s = settings or load_settings()
    client = _client(s)
    if not model_uri.startswith("models:/") or model_uri.startswith("models:/m-"):
        raise UsageError(
            f"{model_uri!r} is not a registered model version: give models:/NAME@ALIAS or models:/NAME/VERSION."
        )
    name, sep, alias = model_uri[len("models:/") :].partition("@")
    fix = "Check the name, version or alias (the MLflow UI's Models page lists them) and MLFLOW_TRACKING_URI."
    with map_mlflow_errors(f"No model version {model_uri!r}", fix=fix, uri=s.tracking_uri):
        if sep:
            version = client.get_model_version_by_alias(name, alias)
        else:
            name, _, number = name.rstrip("/").rpartition("/")
            if not name or not number.isdigit():
                raise UsageError(f"{model_uri!r}: give models:/NAME@ALIAS or models:/NAME/VERSION (a number).")
            version = client.get_model_version(name, number)
    return _version_record(version)


def lineage(model_uri: str, settings: Settings | None = None) -> Lineage:
    """A model version -> the run it was promoted from -> its stages, notebook, commit and inputs -> the
    promotion's evidence -> the monitors that watched it."""
    s = settings or load_settings()
    version = model_version(model_uri, s)
    source = version["tags"].get(tags.SOURCE_RUN) or version["run_id"]
    detail = run_detail(source, s) if source else None
    evidence = {k: v for k, v in version["tags"].items() if k.startswith(tags.PREFIX)}
    watched = f"{version['name']}/{version['version']}"
    watching = [f"tags.`{tags.KIND}` = 'monitor'", f"tags.`{tags.MODEL}` = {literal(watched, 'model')}"]
    monitors = _search(s, watching, None, MAX_PAGE, None)["runs"]
    return Lineage(
        model=version,
        source_run=detail,
        model_run=version["tags"].get(tags.MODEL_RUN) or version["run_id"],
        notebook=detail["notebook"] if detail else None,
        git_commit=detail["tags"].get(tags.GIT_COMMIT) if detail else None,
        evidence=evidence,
        monitors=monitors,
    )


_MODEL_FIX = "Check the name (GET /mlops-nb/api/models lists them) and MLFLOW_TRACKING_URI."


def _aliases(model: Any) -> dict[str, str]:
    aliases = model.aliases or {}
    return {a: str(v) for a, v in sorted(aliases.items())}


def list_models(settings: Settings | None = None) -> ModelList:
    """The registered models, by name, with their aliases and latest version."""
    s = settings or load_settings()
    client = _client(s)
    models: list[ModelSummary] = []
    token = None
    with map_mlflow_errors("listing registered models", fix="", uri=s.tracking_uri):
        while True:
            page = client.search_registered_models(max_results=MAX_PAGE, order_by=["name ASC"], page_token=token)
            for model in page:
                if model.name.endswith(LOCK_SUFFIX):
                    continue
                latest = [int(v.version) for v in model.latest_versions or []]
                models.append(
                    ModelSummary(
                        name=model.name,
                        description=model.description or "",
                        aliases=_aliases(model),
                        latest_version=str(max(latest)) if latest else None,
                        last_updated=int(model.last_updated_timestamp or 0),
                        tags=dict(model.tags or {}),
                    )
                )
            token = page.token
            if not token:
                break
    return ModelList(models=models)


def model_detail(name: str, settings: Settings | None = None) -> ModelDetail:
    """Registered model ``name``: its versions (newest first) with their promotion evidence, its aliases and
    the newest monitoring run of any of its versions. UsageError when there is no such model."""
    s = settings or load_settings()
    client = _client(s)
    if not name or name.endswith(LOCK_SUFFIX):
        raise UsageError(f"No registered model {name!r}. {_MODEL_FIX}")
    with map_mlflow_errors(f"No registered model {name!r}", fix=_MODEL_FIX, uri=s.tracking_uri):
        model = client.get_registered_model(name)
        found = client.search_model_versions(f"name = {literal(name, 'model name')}", max_results=MAX_PAGE)
    versions = sorted((_version_record(v) for v in found), key=lambda v: -int(v["version"]))
    watching = [f"tags.`{tags.KIND}` = 'monitor'", f"tags.`{tags.MODEL}` LIKE {literal(name + '/%', 'model name')}"]
    monitors = _search(s, watching, None, 1, None)["runs"]
    watched = None
    if monitors:
        with map_mlflow_errors("reading the monitoring run", fix=_RUN_FIX, uri=s.tracking_uri):
            watched = client.get_run(monitors[0]["run_id"]).data.tags.get(tags.MODEL, "").rpartition("/")[2] or None
    return ModelDetail(
        name=model.name,
        description=model.description or "",
        aliases=_aliases(model),
        last_updated=int(model.last_updated_timestamp or 0),
        tags=dict(model.tags or {}),
        versions=[
            ModelVersionSummary(**v, evidence={k: t for k, t in v["tags"].items() if k.startswith("mlops_nb.")})
            for v in versions
        ],
        last_monitor=monitors[0] if monitors else None,
        last_monitor_version=watched,
    )


MAX_ARTIFACTS = 1000


def run_artifacts(run_id: str, settings: Settings | None = None) -> list[ArtifactRecord]:
    """The artifact files of run ``run_id`` (folders walked, at most ``MAX_ARTIFACTS``), sorted by path.
    UsageError for an unknown id."""
    s = settings or load_settings()
    client = _client(s)
    found: list[ArtifactRecord] = []
    folders = [None]
    with map_mlflow_errors(f"No run {run_id!r}", fix=_RUN_FIX, uri=s.tracking_uri):
        client.get_run(run_id)  # an unknown id is an error, not a run without files
        while folders and len(found) < MAX_ARTIFACTS:
            for item in client.list_artifacts(run_id, folders.pop()):
                if item.is_dir:
                    folders.append(item.path)
                elif len(found) < MAX_ARTIFACTS:
                    found.append(ArtifactRecord(path=item.path, size=item.file_size))
    return sorted(found, key=lambda a: a["path"])
