"""The wheel carries the JupyterLab extension: built from a clean checkout (the build runs jlpm), installed into
a fresh virtualenv where node is not on PATH, JupyterLab lists both extensions as enabled and OK."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("node") is None, reason="building the labextension needs node"),
    pytest.mark.skipif(not (REPO / ".git").exists(), reason="needs a git checkout (git ls-files)"),
]


def _clean_copy(target: Path) -> Path:
    """The tracked files only: no node_modules, no built extension, as CI checks it out."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, text=True
    ).stdout.split("\0")
    for name in filter(None, files):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.mark.extended
def test_the_wheel_ships_and_enables_both_extensions(tmp_path):
    source = _clean_copy(tmp_path / "src")
    assert not (source / "mlops_nb" / "labextension").exists()
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-w", str(tmp_path / "dist"), "-q"],
        check=True,
        timeout=900,
    )
    (wheel,) = (tmp_path / "dist").glob("mlops_nb-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    data = "mlops_nb-0.1.0.data/data"
    assert f"{data}/share/jupyter/labextensions/mlops-nb/package.json" in names
    assert f"{data}/share/jupyter/labextensions/mlops-nb/schemas/mlops-nb/plugin.json" in names
    assert f"{data}/etc/jupyter/jupyter_server_config.d/mlops_nb.json" in names
    assert f"{data}/share/jupyter/labextensions/mlops-nb/install.json" in names
    assert not [n for n in names if "node_modules" in n or n.startswith("labextension/")]

    # A fresh venv: mlops-nb from the wheel; its dependencies from this environment (a path line, so that
    # this environment's own mlops-nb, an editable install, stays out).
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    )  # fmt: skip
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True, timeout=300)

    env = {
        "PATH": str(venv / "bin"),  # no node, no jlpm
        "HOME": str(tmp_path / "home"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
    }
    assert shutil.which("node", path=env["PATH"]) is None
    where = subprocess.run(
        [str(python), "-c", "import mlops_nb; print(mlops_nb.__file__)"], env=env, capture_output=True, text=True
    )
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr

    def listing(module: str) -> str:
        # `jupyter labextension list`, run as its module: the venv has the wheel's scripts only
        done = subprocess.run([str(python), "-m", module, "list"], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)  # no colours

    lab = listing("jupyterlab.labextensions")
    line = next(x for x in lab.splitlines() if "mlops-nb" in x)
    assert "enabled" in line and "OK" in line and "(python, mlops-nb)" in line, lab
    server = listing("jupyter_server.extension.serverextension")
    assert re.search(r"mlops_nb\.server\s+enabled", server), server
    assert re.search(r"Validating mlops_nb\.server\.\.\.\s+mlops_nb\.server\s+(\S+\s+)?OK", server), server
