"""Layered settings: defaults < ``[tool.mlops_nb]`` in the nearest pyproject.toml < environment < arguments.

Every setting is declared once in ``SETTINGS`` with its type, environment variables and default, the way
MLflow's ``environment_variables.py`` does it. Only the standard library is imported here.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mlops_nb.exceptions import ConfigError

HOME_DIRNAME = ".mlops_nb"
# The project root itself, instead of the nearest pyproject.toml above the working directory. The Jupyter
# server extension sets it for the kernels it starts (they start in the notebook's folder), so that a kernel
# records where the server reads, however the project is laid out.
PROJECT_ROOT_ENV = "MLOPS_NB_PROJECT_ROOT"


@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting: its name in pyproject, the environment variables that set it (first wins), its parser."""

    name: str
    env: tuple[str, ...]
    parse: Callable[[str], Any]
    help: str


def _text(value: str) -> str:
    value = str(value).strip()
    if not value:
        raise ValueError("it is empty")
    return value


def _url(value: str) -> str:
    text = _text(value)
    scheme, sep, rest = text.partition("://")
    if not sep or not scheme.replace("+", "").replace("-", "").isalnum() or not rest.strip("/"):
        raise ValueError(
            "it must be an fsspec URL such as s3://bucket/prefix, gs://bucket/prefix or file:///shared/folder "
            "(a local folder is cache_dir, MLOPS_NB_CACHE_DIR)"
        )
    return text


def _cache_switch(value: Any) -> bool:
    try:
        return _switch(value)
    except ValueError:
        raise ValueError("use on/off, or an fsspec URL (s3://bucket/prefix) for a shared cache") from None


def _seconds(value: str) -> float:
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError("it must be a number of seconds >= 0")
    return number


def _megabytes(value: str) -> float:
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError("it must be a positive number of megabytes")
    return number


def _switch(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "on", "yes"):
        return True
    if text in ("0", "false", "off", "no"):
        return False
    raise ValueError("use on/off (or true/false, 1/0)")


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "tracking_uri",
        ("MLFLOW_TRACKING_URI",),
        _text,
        "Where MLflow records go (sqlite:///..., http://host:5000, postgresql://...). "
        "Default: the embedded SQLite store under the mlops-nb home.",
    ),
    Setting(
        "experiment",
        ("MLOPS_NB_EXPERIMENT", "MLFLOW_EXPERIMENT_NAME"),
        _text,
        "MLflow experiment for runs. Default: the notebook's file stem when known, else 'Default'.",
    ),
    Setting(
        "home",
        ("MLOPS_NB_HOME",),
        _text,
        "The mlops-nb folder (embedded store, artifacts, journal, cache). Default: .mlops_nb/ in the project root.",
    ),
    Setting(
        "cache_dir",
        ("MLOPS_NB_CACHE_DIR",),
        _text,
        "Where stage outputs are cached. Default: cache/ in the mlops-nb home.",
    ),
    Setting(
        "cache",
        ("MLOPS_NB_CACHE",),
        _cache_switch,
        "Whether %%track stages are served from the cache (default on; off runs every stage, as "
        "`mlops-nb run --no-cache` and `mlops-nb reproduce` do). In pyproject.toml a URL here is cache_uri.",
    ),
    Setting(
        "cache_uri",
        ("MLOPS_NB_CACHE_URI",),
        _url,
        "A stage cache the team shares, as an fsspec URL (s3://bucket/prefix, gs://..., file:///shared/folder), "
        "read through the local cache_dir. Default: none (the local cache only).",
    ),
    Setting(
        "cache_max_mb",
        ("MLOPS_NB_CACHE_MAX_MB",),
        _megabytes,
        "Size bound of the stage cache in MB (default 10240); least recently used entries go first.",
    ),
    Setting(
        "flush_interval",
        ("MLOPS_NB_FLUSH_INTERVAL",),
        _seconds,
        "Seconds the background sender gathers records into one batch before sending (default 0.5).",
    ),
    Setting(
        "flush_timeout",
        ("MLOPS_NB_FLUSH_TIMEOUT",),
        _seconds,
        "Seconds a process waits at exit for its records to reach MLflow (default 60); "
        "what is not sent stays in the journal and is sent on the next start.",
    ),
)
_BY_NAME = {s.name: s for s in SETTINGS}


@dataclasses.dataclass(frozen=True)
class Settings:
    """Resolved settings. Paths are absolute; ``tracking_uri`` is never empty."""

    project_root: Path
    home: Path
    cache_dir: Path
    cache: bool
    cache_uri: str | None
    cache_max_mb: float
    tracking_uri: str
    experiment: str | None
    flush_interval: float
    flush_timeout: float
    # setting -> where its value was read (for messages; two equal settings read from elsewhere are equal)
    sources: dict[str, str] = dataclasses.field(default_factory=dict, compare=False)

    @property
    def embedded(self) -> bool:
        """True when records go to the embedded SQLite store under ``home``."""
        return self.tracking_uri == embedded_tracking_uri(self.home)

    @property
    def journal_dir(self) -> Path:
        return self.home / "journal"

    @property
    def artifact_root(self) -> Path:
        return self.home / "artifacts"


DEFAULTS: dict[str, Any] = {"flush_interval": 0.5, "flush_timeout": 60.0, "cache": True, "cache_max_mb": 10240.0}


def embedded_tracking_uri(home: Path) -> str:
    return f"sqlite:///{home / 'mlflow.db'}"


def find_project_root(start: Path | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The folder of the nearest ``pyproject.toml`` at or above ``start``, else ``start``. Without ``start``:
    ``MLOPS_NB_PROJECT_ROOT`` when it is set, else the search starts at the working directory."""
    if start is None:
        given = (os.environ if env is None else env).get(PROJECT_ROOT_ENV)
        if given:
            return Path(given).expanduser().resolve()
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    return start


def _pyproject_table(root: Path) -> tuple[dict[str, Any], str]:
    path = root / "pyproject.toml"
    if not path.is_file():
        return {}, str(path)
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(
            f"Cannot read {path}: {e}. Fix the TOML syntax (mlops-nb reads its [tool.mlops_nb] table).",
            source=str(path),
        ) from e
    table = data.get("tool", {}).get("mlops_nb", {})
    if not isinstance(table, dict):
        raise ConfigError(f"[tool.mlops_nb] in {path} must be a table.", source=str(path))
    return table, f"[tool.mlops_nb] in {path}"


def _parse(setting: Setting, raw: Any, source: str) -> Any:
    try:
        return setting.parse(raw)
    except (TypeError, ValueError) as e:
        raise ConfigError(
            f"Bad value {raw!r} for setting '{setting.name}' from {source}: {e}. {setting.help}",
            setting=setting.name,
            source=source,
        ) from e


def load_settings(start: Path | None = None, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Resolve the settings for the project around ``start`` (default: the working directory).

    Args:
        start: folder to look for the nearest pyproject.toml from (default: ``MLOPS_NB_PROJECT_ROOT``, else the
            working directory).
        env: environment to read (default ``os.environ``).
        **overrides: explicit values (highest priority); ``None`` means "not given".

    Raises:
        ConfigError: an unknown key, a bad value, or an unreadable pyproject.toml.
    """
    env = os.environ if env is None else env
    root = find_project_root(start, env)
    table, table_source = _pyproject_table(root)
    values: dict[str, Any] = dict(DEFAULTS)
    sources: dict[str, str] = {}

    for key, raw in table.items():
        if key == "cache" and isinstance(raw, str) and "://" in raw:
            key = "cache_uri"  # `cache = "s3://..."`: the shared cache, and the switch stays on
        if key not in _BY_NAME:
            if isinstance(raw, dict):
                continue  # sub-tables ([tool.mlops_nb.ci] ...) belong to the features that read them
            raise _unknown_setting(key, list(_BY_NAME), table_source)
        values[key] = _parse(_BY_NAME[key], raw, table_source)
        sources[key] = table_source
    for setting in SETTINGS:
        for var in setting.env:
            if env.get(var):
                values[setting.name] = _parse(setting, env[var], f"environment variable {var}")
                sources[setting.name] = f"environment variable {var}"
                break
    for key, raw in overrides.items():
        if key not in _BY_NAME:
            raise TypeError(f"load_settings() got an unknown setting {key!r}")
        if raw is not None:
            values[key] = _parse(_BY_NAME[key], raw, "argument")
            sources[key] = "argument"

    home = _path(values.get("home"), root, root / HOME_DIRNAME)
    if home.exists() and not home.is_dir():
        raise ConfigError(
            f"The mlops-nb home {home} (from {sources.get('home', 'the default')}) is a file, not a folder. "
            "Remove it or point MLOPS_NB_HOME to a folder.",
            setting="home",
            source=sources.get("home"),
        )
    tracking_uri = values.get("tracking_uri") or _mlflow_session_uri() or embedded_tracking_uri(home)
    if "://" not in tracking_uri and tracking_uri not in {"databricks"}:
        # MLflow reads a bare path as a ./mlruns-style file store, which it deprecates.
        raise ConfigError(
            f"Tracking URI {tracking_uri!r} (from {sources.get('tracking_uri', 'mlflow.set_tracking_uri')}) "
            "has no scheme. Use sqlite:///path/to/mlflow.db, http://host:port or a database URI.",
            setting="tracking_uri",
            source=sources.get("tracking_uri"),
        )
    return Settings(
        project_root=root,
        home=home,
        cache_dir=_path(values.get("cache_dir"), root, home / "cache"),
        cache=values["cache"],
        cache_uri=values.get("cache_uri"),
        cache_max_mb=values["cache_max_mb"],
        tracking_uri=tracking_uri,
        experiment=values.get("experiment"),
        flush_interval=values["flush_interval"],
        flush_timeout=values["flush_timeout"],
        sources=sources,
    )


def _path(value: str | None, root: Path, default: Path) -> Path:
    if not value:
        return default
    path = Path(value).expanduser()
    return (path if path.is_absolute() else root / path).resolve()


# [tool.mlops_nb.monitor]: what `mlops-nb monitor` checks and what it does on drift, so a scheduler runs the
# command with no flags; options given on the command line win. [tool.mlops_nb.monitor.retrain]: the loop.


def _share(value: Any) -> float:
    number = float(value)
    if not 0 < number <= 1:
        raise ValueError("it must be a share in (0, 1]")
    return number


def _table(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("it must be a table (key = value pairs)")
    return dict(value)


def _thresholds(value: Any) -> dict[str, float]:
    table = _table(value)
    out = {}
    for method, raw in table.items():
        number = float(raw)
        if not math.isfinite(number) or number < 0:
            raise ValueError(f"the threshold of {method!r} must be a number >= 0")
        out[str(method)] = number
    return out


def _texts(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ValueError("it must be a string or a list of strings")
    return tuple(_text(item) for item in items)


def _executor(value: Any) -> str:
    text = _text(value)
    if text not in ("local", "dask"):
        raise ValueError("use local or dask")
    return text


def _cron(value: Any) -> str:
    text = _text(value)
    if len(text.split()) != 5:
        raise ValueError("it must be a cron schedule of 5 fields, e.g. '0 6 * * *' (06:00 UTC every day)")
    return text


MONITOR_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "model", ("MLOPS_NB_MONITOR_MODEL",), _text, "The model to monitor (MODEL_URI), e.g. models:/churn@champion."
    ),
    Setting("data", ("MLOPS_NB_MONITOR_DATA",), _text, "The data to check (--data): a file, a folder or a glob."),
    Setting("reference", (), _text, "The training data or its reference_profile.json (--reference)."),
    Setting("labels", (), _text, "The column of true labels in the data, for realised performance (--labels)."),
    Setting("preset", (), _text, "Which drift methods decide: mlops-nb (default) or evidently (--preset)."),
    Setting(
        "thresholds",
        (),
        _thresholds,
        "Drift thresholds by method, over the preset's: a table such as { wasserstein = 0.15, psi = 0.25 }.",
    ),
    Setting("drift_share", (), _share, "The dataset drifts when this share of its features drift (default 0.5)."),
    Setting("fail_on_drift", (), _switch, "Exit 3 when the dataset drifts (--fail-on-drift); true or false."),
    Setting("executor", (), _executor, "Where the statistics are computed: local (default) or dask (--executor)."),
    Setting("scheduler", ("MLOPS_NB_MONITOR_SCHEDULER",), _text, "The Dask scheduler (--scheduler tcp://host:8786)."),
    Setting(
        "schedule",
        (),
        _cron,
        "When the monitoring workflow of `mlops-nb ci --init github` runs: a cron schedule (default '0 6 * * *').",
    ),
)
RETRAIN_SETTINGS: tuple[Setting, ...] = (
    Setting("notebook", (), _text, "The notebook that retrains the model (--retrain), relative to the project."),
    Setting("parameters", (), _table, "Its parameters (-p NAME VALUE): a table such as { n_estimators = 200 }."),
    Setting("promote", (), _text, "The registered model the retrained model is promoted in (--promote NAME)."),
    Setting("alias", (), _text, "The alias moved when every gate holds (--alias; default champion)."),
    Setting("must_beat", (), _text, "The alias whose version the new model must beat (--must-beat), with 'metric'."),
    Setting("metric", (), _text, "The metric of the must-beat gate (--metric), with 'must_beat'."),
    Setting("higher_is_better", (), _switch, "The direction of 'metric' (default true)."),
    Setting("require", (), _texts, "Gates on the job's metrics: a list such as ['accuracy >= 0.9']."),
    Setting("timeout", (), _seconds, "Seconds any one cell of the retraining notebook may run (default: no limit)."),
    Setting("experiment", (), _text, "The MLflow experiment of the retraining job (default: the notebook's stem)."),
)
DEFAULT_SCHEDULE = "0 6 * * *"


@dataclasses.dataclass(frozen=True)
class RetrainSettings:
    """``[tool.mlops_nb.monitor.retrain]``: on dataset drift, run ``notebook`` and promote its model."""

    notebook: Path
    promote: str
    parameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    alias: str = "champion"
    must_beat: str | None = None
    metric: str | None = None
    higher_is_better: bool = True
    require: tuple[str, ...] = ()
    timeout: float | None = None
    experiment: str | None = None


@dataclasses.dataclass(frozen=True)
class MonitorSettings:
    """``[tool.mlops_nb.monitor]`` of the project (every field None or its default when it is absent)."""

    source: str  # where they were read: "[tool.mlops_nb.monitor] in /path/pyproject.toml"
    model: str | None = None
    data: str | None = None
    reference: str | None = None
    labels: str | None = None
    preset: str | None = None
    thresholds: dict[str, float] = dataclasses.field(default_factory=dict)
    drift_share: float | None = None
    fail_on_drift: bool = False
    executor: str = "local"
    scheduler: str | None = None
    schedule: str = DEFAULT_SCHEDULE
    retrain: RetrainSettings | None = None

    @property
    def configured(self) -> bool:
        """True when the project has a [tool.mlops_nb.monitor] table."""
        return self.model is not None or self.data is not None or self.retrain is not None


# [tool.mlops_nb.promote]: the metric the project promotes by, so every `mlops-nb promote` compares the run
# with the version the alias points at; and optionally the gate every promotion must pass (--must-beat).
PROMOTE_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "metric",
        (),
        _text,
        "The metric promotions are compared on (the default of --metric), e.g. accuracy: promote prints the run's "
        "value against the version the alias points at, and warns when it is worse.",
    ),
    Setting("higher_is_better", (), _switch, "The direction of 'metric' (default true)."),
    Setting(
        "must_beat",
        (),
        _text,
        "An alias every promotion must beat on 'metric' (the default of --must-beat; --no-must-beat skips it).",
    ),
)


@dataclasses.dataclass(frozen=True)
class PromoteSettings:
    """``[tool.mlops_nb.promote]`` of the project (every field None or its default when it is absent)."""

    source: str
    metric: str | None = None
    higher_is_better: bool = True
    must_beat: str | None = None


def load_promote_settings(start: Path | None = None, env: Mapping[str, str] | None = None) -> PromoteSettings:
    """``[tool.mlops_nb.promote]`` of the project around ``start``.

    Raises:
        ConfigError: an unknown key, a bad value, or ``must_beat`` without ``metric``.
    """
    env = os.environ if env is None else env
    table, where = _pyproject_table(find_project_root(start))
    source = where.replace("[tool.mlops_nb]", "[tool.mlops_nb.promote]")
    values = _read_table(table.get("promote", {}), PROMOTE_SETTINGS, source, env)
    if "must_beat" in values and "metric" not in values:
        raise ConfigError(
            f"Setting 'must_beat' in {source} needs 'metric': every promotion must beat the version @must_beat "
            'on that metric. Add metric = "accuracy" (or the metric your notebook logs).',
            setting="must_beat",
            source=source,
        )
    return PromoteSettings(source=source, **values)


def _unknown_setting(key: str, known: list[str], source: str) -> ConfigError:
    """The error of a key no setting declares: the closest known name, and every known one."""
    import difflib

    close = difflib.get_close_matches(key, known, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return ConfigError(
        f"Unknown setting '{key}' in {source}.{hint} Known settings: {', '.join(known)}.", setting=key, source=source
    )


def _read_table(
    table: Any, declared: tuple[Setting, ...], source: str, env: Mapping[str, str], subtables: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Parse one table of declared settings (environment variables over it); errors name setting and source."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source} must be a table.", source=source)
    by_name = {s.name: s for s in declared}
    values: dict[str, Any] = {}
    for key, raw in table.items():
        if key in subtables:
            continue
        if key not in by_name:
            raise _unknown_setting(key, list(by_name), source)
        values[key] = _parse(by_name[key], raw, source)
    for setting in declared:
        for var in setting.env:
            if env.get(var):
                values[setting.name] = _parse(setting, env[var], f"environment variable {var}")
                break
    return values


def load_monitor_settings(start: Path | None = None, env: Mapping[str, str] | None = None) -> MonitorSettings:
    """``[tool.mlops_nb.monitor]`` (and its ``retrain`` table) of the project around ``start``.

    Relative paths (``data``, ``reference``, ``retrain.notebook``) are taken from the project root.

    Raises:
        ConfigError: an unknown key, a bad value, or a loop missing what it needs; the message names the
            setting, where it was read and the fix.
    """
    env = os.environ if env is None else env
    root = find_project_root(start, env)
    table, where = _pyproject_table(root)
    source = where.replace("[tool.mlops_nb]", "[tool.mlops_nb.monitor]")
    values = _read_table(table.get("monitor", {}), MONITOR_SETTINGS, source, env, subtables=("retrain",))
    for key in ("data", "reference"):
        if key in values and "://" not in values[key]:
            values[key] = str(_path(values[key], root, root))
    retrain = None
    if "retrain" in table.get("monitor", {}):
        retrain_source = source.replace("[tool.mlops_nb.monitor]", "[tool.mlops_nb.monitor.retrain]")
        loop = _read_table(table["monitor"]["retrain"], RETRAIN_SETTINGS, retrain_source, env)
        for key, example in (("notebook", 'notebook = "notebooks/train.ipynb"'), ("promote", 'promote = "churn"')):
            if key not in loop:
                raise ConfigError(
                    f"Setting '{key}' is missing from {retrain_source}: the loop needs it. Add {example}.",
                    setting=key,
                    source=retrain_source,
                )
        if ("must_beat" in loop) != ("metric" in loop):
            raise ConfigError(
                f"Settings 'must_beat' and 'metric' go together in {retrain_source}: the new model must beat the "
                'version @must_beat on metric. Add both (must_beat = "champion", metric = "accuracy") or neither.',
                setting="must_beat" if "must_beat" in loop else "metric",
                source=retrain_source,
            )
        loop["notebook"] = _path(loop["notebook"], root, root)
        retrain = RetrainSettings(**loop)
    return MonitorSettings(source=source, retrain=retrain, **values)


def load_tune_space(start: Path | None = None) -> tuple[dict[str, str], str]:
    """``[tool.mlops_nb.tune.space]`` of the project around ``start``: ``NAME = "DIST"`` lines (the space of
    ``mlops-nb tune`` when no ``--space`` is given), and where they were read.

    Raises:
        ConfigError: the table is not ``NAME = "DIST"`` text lines, or has keys other than ``space``.
    """
    root = find_project_root(start)
    table, where = _pyproject_table(root)
    source = where.replace("[tool.mlops_nb]", "[tool.mlops_nb.tune.space]")
    tune = table.get("tune", {})
    if not isinstance(tune, dict) or set(tune) - {"space"}:
        raise ConfigError(f'[tool.mlops_nb.tune] takes one table, space (NAME = "DIST" lines); see {source}.')
    space = tune.get("space", {})
    if not isinstance(space, dict) or not all(isinstance(v, str) for v in space.values()):
        raise ConfigError(
            f'{source} must be NAME = "DIST" lines of text, e.g. C = "loguniform(1e-3,1e2)".', source=source
        )
    return dict(space), source


def _mlflow_session_uri() -> str | None:
    """The URI a user set with ``mlflow.set_tracking_uri()`` in this process, if MLflow is loaded."""
    import sys

    utils = sys.modules.get("mlflow.tracking._tracking_service.utils")
    if utils is not None and getattr(utils, "is_tracking_uri_set", lambda: False)():
        return str(utils.get_tracking_uri())
    return None
