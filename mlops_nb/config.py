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
        _switch,
        "Whether %%track stages are served from the cache (default on; off runs every stage, as "
        "`mlops-nb run --no-cache` and `mlops-nb reproduce` do).",
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
    cache_max_mb: float
    tracking_uri: str
    experiment: str | None
    flush_interval: float
    flush_timeout: float

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


def find_project_root(start: Path | None = None) -> Path:
    """The folder of the nearest ``pyproject.toml`` at or above ``start`` (default: cwd), else ``start``."""
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
        start: folder to look for the nearest pyproject.toml from.
        env: environment to read (default ``os.environ``).
        **overrides: explicit values (highest priority); ``None`` means "not given".

    Raises:
        ConfigError: an unknown key, a bad value, or an unreadable pyproject.toml.
    """
    env = os.environ if env is None else env
    root = find_project_root(start)
    table, table_source = _pyproject_table(root)
    values: dict[str, Any] = dict(DEFAULTS)
    sources: dict[str, str] = {}

    for key, raw in table.items():
        if key not in _BY_NAME:
            if isinstance(raw, dict):
                continue  # sub-tables ([tool.mlops_nb.ci] ...) belong to the features that read them
            import difflib

            close = difflib.get_close_matches(key, _BY_NAME, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"Unknown setting '{key}' in {table_source}.{hint} Known settings: {', '.join(_BY_NAME)}.",
                setting=key,
                source=table_source,
            )
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
        cache_max_mb=values["cache_max_mb"],
        tracking_uri=tracking_uri,
        experiment=values.get("experiment"),
        flush_interval=values["flush_interval"],
        flush_timeout=values["flush_timeout"],
    )


def _path(value: str | None, root: Path, default: Path) -> Path:
    if not value:
        return default
    path = Path(value).expanduser()
    return (path if path.is_absolute() else root / path).resolve()


def _mlflow_session_uri() -> str | None:
    """The URI a user set with ``mlflow.set_tracking_uri()`` in this process, if MLflow is loaded."""
    import sys

    utils = sys.modules.get("mlflow.tracking._tracking_service.utils")
    if utils is not None and getattr(utils, "is_tracking_uri_set", lambda: False)():
        return str(utils.get_tracking_uri())
    return None
