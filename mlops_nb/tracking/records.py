"""What the read side returns: plain typed records (no MLflow objects), the shapes of ``--json``, of the
JupyterLab server's REST answers and of the front end's TypeScript interfaces."""

from __future__ import annotations

from typing import Any, TypedDict

from mlops_nb.tracking import tags as tag_names


class RunSummary(TypedDict):
    """A row of ``mlops-nb runs``."""

    run_id: str
    name: str | None
    experiment_id: str
    kind: str | None  # notebook | job | sweep | stage | script | monitor; None for a run mlops-nb did not make
    status: str  # RUNNING | FINISHED | FAILED | KILLED
    start_time: int  # milliseconds since the epoch
    end_time: int | None
    duration_s: float | None
    notebook: str | None
    params: dict[str, str]
    metrics: dict[str, float]


class StageSummary(TypedDict):
    """One stage of a run, as ``mlops-nb show`` lists it and ``mlops-nb diff`` compares it."""

    run_id: str
    stage: str
    status: str
    start_time: int
    duration_s: float | None
    cache_hit: bool
    cache_key: str | None
    cache_source_run: str | None
    cache_miss_reason: str | None
    code_hash: str | None
    params: dict[str, str]
    metrics: dict[str, float]
    inputs: dict[str, str]  # name -> fingerprint of the values it read
    files: dict[str, str]  # path -> content fingerprint of the files it read
    modules: dict[str, str]  # module -> fingerprint (version, or content for local modules)
    outputs: dict[str, str]


class RunRecord(RunSummary):
    """One run with all its tags (what promote and reproduce read)."""

    tags: dict[str, str]


class RunDetail(RunRecord):
    """One run with its tags and stages (``mlops-nb show``)."""

    experiment: str
    stages: list[StageSummary]
    deleted: bool  # in MLflow's trash (``mlflow runs restore`` brings it back, ``mlflow gc`` removes it)


class RunPage(TypedDict):
    runs: list[RunSummary]
    next_page_token: str | None


# "in" is a Python keyword: the functional form keeps the JSON name.
StageDiff = TypedDict(
    "StageDiff",
    {
        "stage": str,
        "in": str,  # "both" | "a" | "b": which runs have the stage
        "code_changed": bool,
        "code_diff": str,  # unified diff of the stage's code, a -> b
        "params_changed": list[str],
        "inputs_changed": list[str],  # names; files as "file:PATH", modules as "module:NAME"
        "cache_hit": list,  # [a, b]: bool, or None where the run has no such stage
        "metrics": dict[str, list],  # name -> [a, b, b - a] (None where missing)
        "run_ids": list,  # [a, b]: the stage runs compared
    },
)


class RunDiff(TypedDict):
    """Why two runs differ (``mlops-nb diff``)."""

    a: str
    b: str
    params: dict[str, list]  # name -> [a, b] (None where missing)
    metrics: dict[str, list]  # name -> [a, b, b - a]
    stages: list[StageDiff]
    deleted: list  # [a, b]: True where the run is in MLflow's trash


class ModelVersionRecord(TypedDict):
    name: str
    version: str
    aliases: list[str]
    run_id: str | None
    source: str
    status: str
    creation_time: int
    tags: dict[str, str]


class LoggedModelRecord(TypedDict):
    """A model MLflow 3's ``mlflow.<flavor>.log_model`` (or autolog) logged from a run, finished uploading."""

    name: str
    model_id: str
    source_run_id: str
    creation_time: int


class Lineage(TypedDict):
    """A model version back to the notebook that made it (``mlops-nb lineage``)."""

    model: ModelVersionRecord
    source_run: RunDetail | None  # the job or notebook run promoted
    model_run: str | None  # the stage run that logged the model
    notebook: str | None
    git_commit: str | None
    evidence: dict[str, str]  # the promotion's tags on the version
    monitors: list[RunSummary]  # monitoring runs of this version, newest first


class ModelVersionSummary(ModelVersionRecord):
    """A version in ``GET /mlops-nb/api/models/NAME``: the record plus its promotion evidence."""

    evidence: dict[str, str]  # the version's mlops_nb.* tags (source run, gates, who promoted it when)


class ModelSummary(TypedDict):
    """A row of ``GET /mlops-nb/api/models``."""

    name: str
    description: str
    aliases: dict[str, str]  # alias -> version
    latest_version: str | None
    last_updated: int  # milliseconds since the epoch
    tags: dict[str, str]


class ModelList(TypedDict):
    models: list[ModelSummary]


class ModelDetail(TypedDict):
    """One registered model (``GET /mlops-nb/api/models/NAME``): its versions, newest first."""

    name: str
    description: str
    aliases: dict[str, str]  # alias -> version
    last_updated: int
    tags: dict[str, str]
    versions: list[ModelVersionSummary]
    last_monitor: RunSummary | None  # the newest monitoring run of any of its versions
    last_monitor_version: str | None  # the version that monitor watched


# The JupyterLab server's own answers (mlops_nb/server); mirrored by the labextension's TypeScript interfaces.


class ServerStatus(TypedDict):
    """``GET /mlops-nb/api/status``."""

    version: str  # mlops-nb's
    experiment: str | None  # the configured experiment (None: each notebook's stem)
    tracking_uri: str  # credentials redacted
    event_schema: str  # the schema id of the live stage events on jupyter_server's event bus


class ArtifactRecord(TypedDict):
    path: str  # relative to the run's artifact root, "/"-separated: "stage/code.py", "model/MLmodel"
    size: int | None  # bytes


class RunView(RunDetail):
    """``GET /mlops-nb/api/runs/RUN_ID``: the run as ``mlops-nb show`` reads it, and its artifact files."""

    artifacts: list[ArtifactRecord]  # its own files (a stage's are under that stage's run), at most MAX_ARTIFACTS


class RunComparison(TypedDict):
    """``GET /mlops-nb/api/compare?run=A&run=B[&metrics=M,N]``: the runs compared (a run without parameters of
    its own with those its stages read) and the Vega-Lite v5 spec the sidebar draws."""

    runs: list[RunSummary]
    spec: dict[str, Any]
    metrics: list[str]  # every metric of the runs, in the chart's default order (what the picker lists)
    chosen: list[str]  # the metrics the chart draws
    left_out: list[str]  # metrics chosen (or by default) but not drawn: more than MAX_AXES axes


class NotebookRuns(TypedDict):
    """``GET /mlops-nb/api/notebook?path=PATH``: what the sidebar shows for one notebook."""

    path: str  # as given, relative to the server's root_dir
    run: RunDetail | None  # the notebook's latest run (notebook or job) with its stages; None before any


class GraphStage(TypedDict):
    """A stage of ``StageGraph`` (kind ``cell``: a cell outside any stage, named with what it defines)."""

    name: str
    kind: str  # stage | cell
    cell: int  # its position among the notebook's cells, from 1
    inputs: list[str]  # names it reads from the stages and cells above it
    outputs: list[str]
    params: list[str]  # the notebook parameters it reads
    files: list[str]  # files it reads
    writes: list[str]  # files it writes


# "from" is a Python keyword: the functional form keeps the JSON name.
GraphEdge = TypedDict("GraphEdge", {"from": str, "to": str, "names": list[str]})


class GraphProblem(TypedDict):
    stage: str
    detail: str  # what would break when it runs apart, and the fix


class StageGraph(TypedDict):
    """``mlops-nb graph --json`` and ``GET /mlops-nb/api/graph?path=PATH``: a notebook's stage graph."""

    notebook: str
    stages: list[GraphStage]
    edges: list[GraphEdge]
    problems: list[GraphProblem]
    parameters: dict[str, Any]  # name -> default (None when not a literal)


class Error(TypedDict):
    """Every error answer of the server: 4xx for bad input (404 unknown id), 409 refused promotion, 5xx store."""

    error: str  # bad_request | forbidden | not_found | conflict | too_large | config | internal | store_unavailable
    message: str  # what went wrong and how to fix it


class GateResult(TypedDict):
    name: str  # "accuracy >= 0.9", "beats @champion on accuracy"
    ok: bool
    message: str


class PromotionResult(TypedDict):
    """``POST /mlops-nb/api/models/NAME/promote``: 200 when promoted; 409 (with ``error``/``message`` too)
    when a gate refused it (nothing registered, the alias unchanged)."""

    name: str
    version: str | None  # the version registered; None when refused
    alias: str
    promoted: bool
    model: str  # STAGE/NAME of the model found in the run
    gates: list[GateResult]
    previous_version: str | None  # where the alias pointed before
    alias_version: str | None  # where it points now


class JobStatus(TypedDict):
    """``POST /mlops-nb/api/jobs`` (202) and ``GET /mlops-nb/api/jobs/ID``: a background ``mlops-nb run``."""

    id: str
    notebook: str  # relative to the server's root_dir
    status: str  # running | succeeded | failed
    exit_code: int | None  # mlops-nb run's: 0 ok, 1 a cell raised, 2 bad input, 3 requirement, 4 kernel, 5 store
    run_id: str | None  # the job's MLflow run (known when it ends)
    outcome: str | None  # mlops-nb run --json's outcome
    message: str | None
    started: int  # milliseconds since the epoch
    ended: int | None
    log_tail: str  # the last lines of its output (credentials redacted)


class StageEvent(TypedDict):
    """A live stage event on jupyter_server's event bus (schema id ``STAGE_EVENT_SCHEMA``), read from the
    local journals: sent when a stage starts and when it ends."""

    notebook: str | None  # relative to the server's root_dir; None for a script or a notebook outside it
    stage: str
    status: str  # RUNNING | FINISHED | FAILED | KILLED
    cache_hit: bool
    duration_s: float | None  # the cell's own time (known at the end)
    run_id: str | None  # the stage's MLflow run id once the sender created it
    run_key: str  # mlops-nb's own id of the stage run (MLflow tag mlops_nb.run_key)
    parent_key: str | None  # the run key of the notebook or job run the stage nests under
    metrics: dict[str, float]  # latest value of each metric logged so far
    time: int  # milliseconds since the epoch of the start or end


STAGE_EVENT_SCHEMA = "https://schema.jupyter.org/mlops_nb/stage/v1"


def summary_record(
    run_id: str,
    name: str | None,
    experiment_id: str,
    status: str,
    start_time: int,
    end_time: int | None,
    tags: dict[str, str],
    params: dict[str, str],
    metrics: dict[str, float],
) -> RunSummary:
    """A run's summary from its plain values (MLflow's objects or its tables)."""
    end = end_time or None
    return RunSummary(
        run_id=run_id,
        name=name,
        experiment_id=str(experiment_id),
        kind=tags.get(tag_names.KIND),
        status=status,
        start_time=start_time,
        end_time=end,
        duration_s=round((end - start_time) / 1000, 3) if end else None,
        notebook=tags.get(tag_names.NOTEBOOK),
        params=params,
        metrics=metrics,
    )


def _prefixed(values: dict[str, str], prefix: str) -> dict[str, str]:
    return {k[len(prefix) :]: v for k, v in values.items() if k.startswith(prefix)}


def stage_record(
    run_id: str,
    name: str | None,
    status: str,
    start_time: int,
    tags: dict[str, str],
    params: dict[str, str],
    metrics: dict[str, float],
) -> StageSummary:
    """A stage run's summary from its plain values."""
    duration = tags.get(tag_names.DURATION)
    return StageSummary(
        run_id=run_id,
        stage=tags.get(tag_names.STAGE, name or ""),
        status=status,
        start_time=start_time,
        duration_s=float(duration) if duration else None,
        cache_hit=tags.get(tag_names.CACHE_HIT) == "true",
        cache_key=tags.get(tag_names.CACHE_KEY),
        cache_source_run=tags.get(tag_names.CACHE_SOURCE),
        cache_miss_reason=tags.get(tag_names.CACHE_MISS),
        code_hash=tags.get(tag_names.CODE_HASH),
        params=params,
        metrics=metrics,
        inputs=_prefixed(tags, tag_names.INPUT_PREFIX),
        files=_prefixed(tags, tag_names.FILE_PREFIX),
        modules=_prefixed(tags, tag_names.MODULE_PREFIX),
        outputs=_prefixed(tags, tag_names.OUTPUT_PREFIX),
    )
