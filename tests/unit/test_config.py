from __future__ import annotations

from pathlib import Path

import pytest

from mlops_nb.config import embedded_tracking_uri, load_settings
from mlops_nb.exceptions import ConfigError


def write_pyproject(folder: Path, table: str) -> None:
    (folder / "pyproject.toml").write_text(f"[project]\nname = 'demo'\n\n[tool.mlops_nb]\n{table}\n")


def test_defaults_are_the_embedded_store_under_the_project_root(project: Path) -> None:
    write_pyproject(project, "")
    nested = project / "notebooks" / "deep"
    nested.mkdir(parents=True)
    settings = load_settings(start=nested, env={})
    assert settings.project_root == project
    assert settings.home == project / ".mlops_nb"
    assert settings.cache_dir == project / ".mlops_nb" / "cache"
    assert settings.tracking_uri == embedded_tracking_uri(project / ".mlops_nb")
    assert settings.embedded
    assert settings.experiment is None


def test_without_pyproject_the_working_directory_is_the_root(project: Path) -> None:
    assert load_settings(env={}).home == project / ".mlops_nb"


def test_a_given_project_root_wins_over_the_working_directory(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_pyproject(project, 'experiment = "from-root"')
    (project / "notebooks").mkdir()
    monkeypatch.chdir(project / "notebooks")
    settings = load_settings(env={"MLOPS_NB_PROJECT_ROOT": str(project)})
    assert (settings.project_root, settings.home, settings.experiment) == (project, project / ".mlops_nb", "from-root")
    assert load_settings(env={}).home == project / ".mlops_nb"  # found upwards anyway: the pyproject.toml
    (project / "pyproject.toml").unlink()
    assert load_settings(env={}).home == project / "notebooks" / ".mlops_nb"
    assert load_settings(env={"MLOPS_NB_PROJECT_ROOT": str(project)}).home == project / ".mlops_nb"


def test_layers_pyproject_then_env_then_arguments(project: Path) -> None:
    write_pyproject(project, 'experiment = "from-pyproject"\nflush_interval = 2\nhome = "state"')
    settings = load_settings(env={})
    assert (settings.experiment, settings.flush_interval) == ("from-pyproject", 2.0)
    assert settings.home == project / "state"

    env = {"MLOPS_NB_EXPERIMENT": "from-env", "MLOPS_NB_FLUSH_INTERVAL": "3"}
    assert load_settings(env=env).experiment == "from-env"
    assert load_settings(env=env).flush_interval == 3.0

    settings = load_settings(env=env, experiment="from-arg", flush_interval=0.1)
    assert (settings.experiment, settings.flush_interval) == ("from-arg", 0.1)


def test_mlflow_variables_are_respected_and_ours_win(project: Path) -> None:
    env = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000", "MLFLOW_EXPERIMENT_NAME": "mlflow-exp"}
    settings = load_settings(env=env)
    assert settings.tracking_uri == "http://127.0.0.1:5000"
    assert not settings.embedded
    assert settings.experiment == "mlflow-exp"
    assert load_settings(env={**env, "MLOPS_NB_EXPERIMENT": "ours"}).experiment == "ours"


def test_unknown_pyproject_key_suggests_the_right_one(project: Path) -> None:
    write_pyproject(project, 'experimnet = "x"')
    with pytest.raises(ConfigError, match="Did you mean 'experiment'") as info:
        load_settings(env={})
    assert info.value.setting == "experimnet"
    assert "pyproject.toml" in info.value.source


def test_sub_tables_belong_to_other_features(project: Path) -> None:
    write_pyproject(project, 'experiment = "x"\n\n[tool.mlops_nb.ci]\njobs = []')
    assert load_settings(env={}).experiment == "x"


@pytest.mark.parametrize(
    ("env", "setting", "fragment"),
    [
        ({"MLOPS_NB_FLUSH_INTERVAL": "soon"}, "flush_interval", "MLOPS_NB_FLUSH_INTERVAL"),
        ({"MLOPS_NB_FLUSH_TIMEOUT": "-1"}, "flush_timeout", ">= 0"),
        ({"MLFLOW_TRACKING_URI": "just/a/path"}, "tracking_uri", "sqlite:///"),
    ],
)
def test_bad_environment_values_name_the_variable_and_the_fix(
    project: Path, env: dict[str, str], setting: str, fragment: str
) -> None:
    with pytest.raises(ConfigError, match=fragment) as info:
        load_settings(env=env)
    assert info.value.setting == setting


def test_broken_pyproject_says_which_file(project: Path) -> None:
    (project / "pyproject.toml").write_text("[tool.mlops_nb\nexperiment = 1")
    with pytest.raises(ConfigError, match="Fix the TOML syntax"):
        load_settings(env={})


def test_home_that_is_a_file_is_refused(project: Path) -> None:
    (project / "state").write_text("oops")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        load_settings(env={"MLOPS_NB_HOME": "state"})
