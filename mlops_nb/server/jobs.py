"""Background ``mlops-nb run`` for the server: one ``python -m mlops_nb run`` process per job.

A job is its own process (its own session, so a Ctrl-C meant for the server does not reach it): the server
never waits for it and a server that stops leaves it to finish and record its run. Its output goes to files
under ``<mlops-nb home>/server-jobs/<id>/`` (``result.json``: ``mlops-nb run --json``; ``log.txt``: the
rest; ``parameters.json``: the request's parameters); a status read polls the process and reads those files.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from mlops_nb.config import Settings
from mlops_nb.exceptions import UsageError
from mlops_nb.jobs.parameters import check_values
from mlops_nb.redaction import redact_uri
from mlops_nb.server.paths import confine
from mlops_nb.tracking.records import JobStatus

LOG_TAIL = 4096  # bytes of the log a status shows
RESULT = "result.json"
LOG = "log.txt"
PARAMETERS = "parameters.json"


@dataclasses.dataclass
class _Job:
    id: str
    notebook: str
    folder: Path
    process: subprocess.Popen[bytes]
    started: int
    ended: int | None = None


def _now() -> int:
    return int(time.time() * 1000)


def command(notebook: Path, body: dict[str, Any], folder: Path) -> tuple[list[str], dict[str, Any]]:
    """The ``mlops-nb run`` command line for a request body (every value as one ``--option=value`` argument:
    nothing in it can become another option), and the parameters it reads from ``folder``'s PARAMETERS file.
    UsageError for a bad body, before anything is written."""
    output = folder / f"{notebook.stem}.out.ipynb"
    args = [sys.executable, "-m", "mlops_nb", "run", str(notebook), f"--output={output}", "--json", "--no-progress-bar"]
    parameters = body.get("parameters", {})
    if not isinstance(parameters, dict):
        raise UsageError('"parameters" takes an object of name -> value, e.g. {"C": 0.5}.')
    parameters = check_values(parameters)  # what mlops-nb run would refuse, refused here: nothing starts
    if parameters:
        # A file, not an argument: one argument holds at most 128 KB. JSON is YAML: values keep their types.
        args.append(f"--parameters-file={folder / PARAMETERS}")
    experiment = body.get("experiment")
    if experiment is not None:
        if not isinstance(experiment, str) or not experiment.strip():
            raise UsageError('"experiment" takes a non-empty string.')
        args.append(f"--experiment={experiment}")
    require = body.get("require", [])
    if not isinstance(require, list) or not all(isinstance(r, str) for r in require):
        raise UsageError('"require" takes a list of strings, e.g. ["accuracy >= 0.9"].')
    args += [f"--require={r}" for r in require]
    timeout = body.get("timeout")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise UsageError('"timeout" takes a positive number of seconds (per cell).')
        args.append(f"--timeout={timeout}")
    no_cache = body.get("no_cache", False)
    if not isinstance(no_cache, bool):
        raise UsageError('"no_cache" takes true or false.')
    if no_cache:
        args.append("--no-cache")
    unknown = sorted(set(body) - {"notebook", "parameters", "experiment", "require", "timeout", "no_cache"})
    if unknown:
        raise UsageError(
            f"Unknown field(s) {', '.join(unknown)}: a job takes notebook, parameters, experiment, require, "
            "timeout and no_cache."
        )
    return args, parameters


class Jobs:
    """The jobs this server started, by id (kept until the server stops; their files stay)."""

    def __init__(self, folder: Path, root: Path, settings: Settings) -> None:
        self.folder = folder
        self.root = root
        self.settings = settings
        self._jobs: dict[str, _Job] = {}

    def start(self, body: dict[str, Any]) -> JobStatus:
        """Start ``mlops-nb run`` for a request body; UsageError for a bad body (nothing started)."""
        path = body.get("notebook")
        if not isinstance(path, str):
            raise UsageError('Give the notebook to run: {"notebook": "notebooks/train.ipynb"}.')
        notebook = confine(self.root, path, "notebook")
        if notebook.suffix != ".ipynb" or not notebook.is_file():
            raise UsageError(f"notebook {path!r} is not a notebook file (.ipynb) under the server's root folder.")
        job_id = uuid.uuid4().hex
        folder = self.folder / job_id
        args, parameters = command(notebook, body, folder)
        folder.mkdir(parents=True, mode=0o700)
        s = self.settings
        # The job records where this server reads, whatever the environment it inherits says.
        env = {**os.environ, "MLFLOW_TRACKING_URI": s.tracking_uri, "MLOPS_NB_HOME": str(s.home)}
        try:
            if parameters:
                (folder / PARAMETERS).write_text(json.dumps(parameters), encoding="utf-8")
            with (folder / RESULT).open("wb") as out, (folder / LOG).open("wb") as log:
                process = subprocess.Popen(
                    args,
                    cwd=self.root,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=log,
                    start_new_session=True,
                )
        except OSError as e:
            shutil.rmtree(folder, ignore_errors=True)  # no job, no folder left behind
            if e.errno == errno.E2BIG:
                raise UsageError(f"The job's options are too long to pass to mlops-nb run ({e.strerror}).") from e
            raise
        rel = notebook.relative_to(self.root).as_posix()
        self._jobs[job_id] = _Job(job_id, rel, folder, process, _now())
        self.reap()
        return self._status(self._jobs[job_id])

    def status(self, job_id: str) -> JobStatus | None:
        self.reap()
        job = self._jobs.get(job_id)
        return self._status(job) if job is not None else None

    def reap(self) -> None:
        """Collect the exit status of every finished job (no zombie processes are left)."""
        for job in self._jobs.values():
            if job.ended is None and job.process.poll() is not None:
                job.ended = _now()

    def _status(self, job: _Job) -> JobStatus:
        code = job.process.returncode if job.ended is not None else None
        result: dict[str, Any] = {}
        if code is not None:
            try:
                result = json.loads((job.folder / RESULT).read_text(encoding="utf-8") or "{}")
            except (OSError, ValueError):
                result = {}  # exit 2: bad input, nothing ran (the log says why)
        return JobStatus(
            id=job.id,
            notebook=job.notebook,
            status="running" if code is None else "succeeded" if code == 0 else "failed",
            exit_code=code,
            run_id=result.get("run_id"),
            outcome=result.get("outcome"),
            message=redact_uri(result["message"]) if result.get("message") else None,
            started=job.started,
            ended=job.ended,
            log_tail=_tail(job.folder / LOG),
        )


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - LOG_TAIL))
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    if len(data) == LOG_TAIL and size > LOG_TAIL:
        text = text.partition("\n")[2]  # from the first whole line
    return redact_uri(text)
