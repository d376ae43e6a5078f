"""The names of the tags mlops-nb puts on MLflow runs and model versions: each one declared once, here.

Search them with MLflow as usual: ``mlflow.search_runs(filter_string="tags.`mlops_nb.cache_hit` = 'true'")``.
"""

from __future__ import annotations

PREFIX = "mlops_nb."  # every tag of mlops-nb's own

# Every run mlops-nb creates
KIND = "mlops_nb.kind"  # notebook | job | sweep | study | stage | script | monitor | evaluation
RUN_KEY = "mlops_nb.run_key"  # mlops-nb's own id of the run (journal replays are idempotent through it)
END_REASON = "mlops_nb.end_reason"
ERROR = "mlops_nb.error"
NOTEBOOK = "mlops_nb.notebook"  # the notebook's path
GIT_COMMIT = "mlops_nb.git.commit"
GIT_DIRTY = "mlops_nb.git.dirty"  # "true" when the working tree had uncommitted changes
ENV_HASH = "mlops_nb.env_hash"  # the installed packages' fingerprint
USER = "mlops_nb.user"
HOST = "mlops_nb.host"
PYTHON = "mlops_nb.python"
PID = "mlops_nb.pid"
KERNEL = "mlops_nb.kernel"  # the kernel's Python, in a notebook
MODELS = "mlops_nb.models"  # comma-separated artifact paths of the models a run logged
DEAD_LETTER = "mlops_nb.dead_letter"  # how many of the run's records MLflow refused, and where they are kept

# MLflow's own system tags, set so MLflow's UI shows source, user and nesting
PARENT = "mlflow.parentRunId"  # stages under notebook/job runs, jobs under sweeps
MLFLOW_USER = "mlflow.user"
MLFLOW_SOURCE_NAME = "mlflow.source.name"
MLFLOW_SOURCE_TYPE = "mlflow.source.type"  # NOTEBOOK | LOCAL
MLFLOW_GIT_COMMIT = "mlflow.source.git.commit"
MLFLOW_GIT_BRANCH = "mlflow.source.git.branch"

# Stage runs
STAGE = "mlops_nb.stage"
CACHE_HIT = "mlops_nb.cache_hit"  # "true" | "false"
CACHE_KEY = "mlops_nb.cache_key"
CACHE_SOURCE = "mlops_nb.cache_source_run"  # on a hit: the run that produced the outputs
CACHE_SKIPPED = "mlops_nb.cache_skipped"  # why the stage cannot be cached at all
CACHE_MISS = "mlops_nb.cache_miss_reason"  # why the stage ran instead of being served from the cache
CODE_HASH = "mlops_nb.code_hash"  # the stage's normalised code (two runs' stages have the same code iff equal)
DURATION = "mlops_nb.duration_s"
INPUT_PREFIX = "mlops_nb.input."  # + name: the fingerprint of an input value
OUTPUT_PREFIX = "mlops_nb.output."  # + name: the fingerprint of an output value
FILE_PREFIX = "mlops_nb.file."  # + path: the content fingerprint of a file input
MODULE_PREFIX = "mlops_nb.module."  # + module: the fingerprint of an imported module (local: content)
OUTPUT_FILES = "mlops_nb.output_files"
MUTATED = "mlops_nb.mutated"  # inputs the stage changed in place (kept and restored like outputs)

# Jobs, sweeps, reproductions, monitors
JOB_CWD = "mlops_nb.job.cwd"
JOB_OUTCOME = "mlops_nb.job.outcome"
JOB_EXECUTOR = "mlops_nb.job.executor"  # dask: the stage graph ran on Dask (jobs/pipeline.py)
JOB_REQUIREMENTS = "mlops_nb.job.requirements"
JOB_STAGE = "mlops_nb.job.stage"  # run --stage NAME: the one stage the job ran (its upstream restored or run)
JOB_UNTIL = "mlops_nb.job.until"  # run --until NAME: the last stage the job ran
PIPELINE_RUN = "mlops_nb.pipeline.run"  # the orchestrator's run id (Airflow's DAG run, KFP's pipeline job)
CI = "mlops_nb.ci"  # "true" on the jobs `mlops-nb ci` runs
SWEEP_BEST = "mlops_nb.sweep.best_run"
SWEEP_FAILED = "mlops_nb.sweep.failed"
SWEEP_INDEX = "mlops_nb.sweep.index"
SWEEP_JOBS = "mlops_nb.sweep.jobs"
SWEEP_FAILURES = "mlops_nb.sweep.failures"
REPRODUCES = "mlops_nb.reproduces"  # on a reproduction: the run it reproduces
REPRODUCE_RESULT = "mlops_nb.reproduce.result"  # its verdict
MODEL = "mlops_nb.model"  # a monitor's or an evaluation run's model: NAME/VERSION
EVALUATION = "mlops_nb.evaluation"  # the names of the evaluations a run logged (mnb.evaluate), comma-separated
TRIGGER = "mlops_nb.trigger"  # a job started by a monitor: monitor:<run id>
STUDY = "mlops_nb.study"  # a study run (mlops-nb tune): the Optuna study's name
TRIAL = "mlops_nb.trial"  # a trial's job run: the Optuna trial number
TRIAL_STATE = "mlops_nb.trial_state"  # COMPLETE | PRUNED | FAIL
BEST = "mlops_nb.best"  # "true" on the best trial's job run
STUDY_BEST = "mlops_nb.study.best_run"  # a study run: the best trial's job run
STUDY_RESUMES = "mlops_nb.study.resumes"  # a study run that continues a study: the study's earlier run

# Model versions (promotion evidence)
SOURCE_RUN = "mlops_nb.source_run"
MODEL_RUN = "mlops_nb.model_run"
EVALUATION_LAST = "mlops_nb.evaluation.last"  # the last evaluation: JSON {run_id, time, metrics of note}
MONITOR_LAST = "mlops_nb.monitor.last"  # the last monitor's summary: JSON {run_id, time, dataset_drift, drift_share}
PROMOTION_PREFIX = "mlops_nb.promotion."

TOP_LEVEL_KINDS = ("notebook", "job", "sweep", "study", "script", "monitor", "evaluation")
