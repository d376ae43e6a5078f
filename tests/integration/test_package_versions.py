"""Installed packages in the stage key by their distribution's version, also when the import name differs
from the distribution's name (``sklearn`` from scikit-learn, ``yaml`` from PyYAML)."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import python
from tests.notebooks import mlops_nb, runs, write_notebook

WORKTREE = Path(__file__).parents[2]
DIST = "mlops-nb-probe-dist"  # installs the module ``nbprobe``: the names differ, as scikit-learn's do


def probe_wheel(folder: Path, version: str) -> Path:
    """A real wheel of ``mlops-nb-probe-dist`` ``version`` whose module ``nbprobe`` holds ``VALUE = version``."""
    info = f"mlops_nb_probe_dist-{version}.dist-info"
    files = {
        "nbprobe/__init__.py": f"VALUE = {version!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {DIST}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: mlops-nb tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    path = folder / f"mlops_nb_probe_dist-{version}-py3-none-any.whl"
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as whl:
        for name, text in files.items():
            whl.writestr(name, text)
    return path


def pip_install(wheel: Path, target: Path) -> None:
    """``pip install --target`` (the real installer), upgrading what is there."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--upgrade",
            "--target",
            target,
            wheel,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr


def test_package_version_names_the_distribution_of_an_import_name() -> None:
    # A fresh interpreter: nothing imported yet, then the same answer once the modules are imported.
    done = python(
        """
        import sys
        from importlib import metadata
        from mlops_nb.stages.fingerprint import package_version

        names = ["sklearn.datasets", "yaml", "numpy.linalg", "json"]
        before = [package_version(n) for n in names]
        assert "sklearn" not in sys.modules and "yaml" not in sys.modules
        import sklearn.datasets, yaml, numpy.linalg, json
        package_version.cache_clear()
        after = [package_version(n) for n in names]
        assert before == after, (before, after)
        print(before)
        print(metadata.version("scikit-learn"), metadata.version("PyYAML"), metadata.version("numpy"))
        """,
        cwd=Path.cwd(),
        env={"PYTHONPATH": str(WORKTREE)},
    )
    assert done.returncode == 0, done.stderr
    found, versions = done.stdout.splitlines()
    sklearn, pyyaml, numpy = versions.split()
    python_version = sys.version.split()[0]
    assert eval(found) == [f"scikit-learn {sklearn}", f"PyYAML {pyyaml}", f"numpy {numpy}", f"python {python_version}"]


def test_an_upgraded_package_whose_import_name_differs_runs_the_stage_again(project: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    pip_install(probe_wheel(tmp_path / "wheels", "1.0"), target)
    write_notebook(
        project / "probe.ipynb",
        "%load_ext mlops_nb",
        "%%track probe\nimport nbprobe\nvalue = nbprobe.VALUE\nprint('value', value)",
    )
    env = {"PYTHONPATH": os.pathsep.join([str(target), str(WORKTREE)])}

    def run() -> str:
        done = mlops_nb("run", "probe.ipynb", "--output", "out.ipynb", cwd=project, env=env)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def stage_of(job: str):
        (stage,) = [r for r in runs(project, "probe") if r.data.tags.get("mlflow.parentRunId") == job]
        return stage

    first = stage_of(run())
    assert first.data.tags["mlops_nb.module.nbprobe"] == f"version {DIST} 1.0"
    assert stage_of(run()).data.tags["mlops_nb.cache_hit"] == "true"

    pip_install(probe_wheel(tmp_path / "wheels", "2.0"), target)
    upgraded = stage_of(run())
    assert upgraded.data.tags["mlops_nb.cache_hit"] == "false"
    # pip --target leaves 1.0's metadata beside 2.0's: the key holds both, as either could be the one imported
    assert upgraded.data.tags["mlops_nb.module.nbprobe"] == f"version {DIST} 1.0, {DIST} 2.0"
    assert "value 2.0" in (project / "out.ipynb").read_text()
    assert stage_of(run()).data.tags["mlops_nb.cache_hit"] == "true"  # 2.0's result is what is cached now

    (target / "mlops_nb_probe_dist-1.0.dist-info").rename(tmp_path / "removed")  # the stale metadata gone
    assert stage_of(run()).data.tags["mlops_nb.module.nbprobe"] == f"version {DIST} 2.0"


def test_the_map_of_modules_to_distributions_is_the_one_importlib_metadata_reads() -> None:
    from importlib import metadata

    from mlops_nb.stages.fingerprint import _installers

    expected = {top: sorted(set(dists)) for top, dists in metadata.packages_distributions().items()}
    found = {
        top: sorted({metadata.Distribution.at(folder).metadata["Name"] for folder in folders})
        for top, folders in _installers().items()
    }
    assert found == expected
