"""A real JupyterLab with mlops-nb's server and lab extensions, and Debian Chromium driven by Playwright, for the
browser tests and benchmarks/bench_lab_browser.py. Each server gets its own Jupyter config/data/runtime and
IPython folders, so nothing of the machine's Jupyter setup leaks in or out."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BUILT = REPO / "mlops_nb" / "labextension"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NEWS_OFF = {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}}
SETTING_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "MLOPS_NB_EXPERIMENT")


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    if not (BUILT / "package.json").exists():
        return "the labextension is not built (cd labextension && jlpm install && jlpm build:prod)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _news_off() -> None:
    """The news toast covers the bottom right; JupyterLab reads this override only from sys.prefix."""
    overrides = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    current = json.loads(overrides.read_text()) if overrides.exists() else {}
    if (
        current.get("@jupyterlab/apputils-extension:notification")
        != NEWS_OFF["@jupyterlab/apputils-extension:notification"]
    ):
        overrides.parent.mkdir(parents=True, exist_ok=True)
        overrides.write_text(json.dumps({**current, **NEWS_OFF}, indent=2))


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    def page_url(self, path: str = "") -> str:
        return f"{self.url}/lab/tree/{path}?token={self.token}" if path else f"{self.url}/lab?token={self.token}"

    def api(self, path: str) -> Any:
        request = urllib.request.Request(f"{self.url}/{path}", headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())


def status_of(server: Lab, path: str) -> tuple[int, dict]:
    """(HTTP status, JSON answer) of a route of ``server``; a 503 or a timeout (the first read imports MLflow,
    Optuna and scikit-learn: slow on a loaded machine) is asked again for two minutes."""
    deadline = time.monotonic() + 120
    while True:
        try:
            return 200, server.api(path)
        except urllib.error.HTTPError as e:
            if e.code != 503 or time.monotonic() > deadline:
                return e.code, json.loads(e.read())
        except TimeoutError:  # the client's 30 s ran out before the server's: the same, seen from here
            if time.monotonic() > deadline:
                raise
        time.sleep(1)


@contextlib.contextmanager
def running_lab(root: Path, home: Path) -> Iterator[Lab]:
    """``jupyter lab`` on 127.0.0.1 serving ``root``, with mlops-nb's extensions from this checkout."""
    _news_off()
    config, data, runtime, ipython = (home / n for n in ("config", "data", "runtime", "ipython"))
    for folder in (config, data / "labextensions", runtime, ipython):
        folder.mkdir(parents=True, exist_ok=True)
    (data / "labextensions" / "mlops-nb").symlink_to(BUILT, target_is_directory=True)
    # Reads may take 90 s rather than 10 before a route answers 503: these stories are about what the user sees,
    # on a machine shared with the rest of the suite, where the server's first read (importing MLflow) took
    # over 30 s at a load of 10 (test_server_outage.py tests the bound itself).
    server_config = {
        "ServerApp": {"jpserver_extensions": {"mlops_nb.server": True}},
        "MlopsNbExtension": {"read_timeout": 90.0},
    }
    (config / "jupyter_server_config.json").write_text(json.dumps(server_config))
    env = {k: v for k, v in os.environ.items() if k not in SETTING_VARS and not k.startswith("MLOPS_NB_")}
    env.update(
        JUPYTER_CONFIG_DIR=str(config),
        JUPYTER_DATA_DIR=str(data),
        JUPYTER_RUNTIME_DIR=str(runtime),
        IPYTHONDIR=str(ipython),
        # In a virtual environment Jupyter reads sys.prefix's folders first, where an installed mlops-nb has
        # its own copy of the extension: this checkout's build (linked into JUPYTER_DATA_DIR) must win.
        JUPYTER_PREFER_ENV_PATH="0",
        PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    token, port = secrets.token_hex(16), _free_port()
    log = home / "jupyter.log"
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        f"--ServerApp.token={token}", "--allow-root", f"--ServerApp.root_dir={root}",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    lab = Lab(f"http://127.0.0.1:{port}", token, root, log, process)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                lab.api("api/status")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"jupyter lab did not start:\n{log.read_text()[-3000:]}") from None
                time.sleep(0.3)
        yield lab
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def chromium(width: int = 1500, height: int = 950) -> Iterator[Any]:
    """A Playwright page in headless Debian Chromium; ``page.console_errors`` collects console errors."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            errors: list[str] = []
            page.on(
                "console", lambda m: errors.append(f"{m.text} @ {m.location.get('url')}") if m.type == "error" else None
            )
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.console_errors = errors
            yield page
        finally:
            browser.close()


def open_notebook(page: Any, lab: Lab, path: str) -> None:
    """Open ``path`` in JupyterLab and wait until its kernel is idle and the MLOps sidebar is shown."""
    page.goto(lab.page_url(path))
    page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=60_000)
    # the kernel's status-bar item says Idle only once the kernel is connected (the toolbar indicator sooner)
    page.wait_for_selector(".jp-StatusBar-Widget :text('| Idle')", timeout=90_000)
    page.click("li[data-id='mlops-nb-sidebar']")
    page.wait_for_selector("#mlops-nb-sidebar .mlops-nb-body", timeout=10_000)


def run_command(page: Any, menu: str, item: str, *, confirm: bool = False) -> None:
    """Click a main-menu item (``Run`` → ``Run All Cells``); ``confirm``: accept the dialog it opens."""
    page.click(f"li.lm-MenuBar-item:has-text('{menu}')")
    page.click(f".lm-Menu-itemLabel:has-text('{item}')")
    if confirm:
        page.click(".jp-Dialog .jp-mod-accept")


def copy_notebook(root: Path, name: str = "train.ipynb") -> Path:
    target = root / name
    shutil.copy(REPO / "notebooks" / name, target)
    return target


def widen_sidebar(page: Any, width: int) -> None:
    """Drag the left sidebar's edge to ``width`` pixels, as a user does to see more columns."""
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle").first
    box = handle.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(width, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
