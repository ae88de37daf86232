"""JupyterLab from the project environment: notebooks/*.py open as notebooks, outputs show inline.

A real JupyterLab server is started from this environment on 127.0.0.1 (free port, random token,
temporary user config/settings/runtime folders so that nothing from the user's home counts), and the
settings it serves are read back over its REST API; the browser test opens ``notebooks/01_cohort.py`` by
URL in headless Chromium and checks that the DOM holds notebook cells, not a text editor.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LABCONFIG = Path(sys.prefix) / "etc" / "jupyter" / "labconfig" / "default_setting_overrides.json"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LabServer:
    def __init__(self, url: str, token: str, process: subprocess.Popen, log: Path) -> None:
        self.url, self.token, self.process, self.log = url, token, process, log

    def get_json(self, path: str) -> dict:
        request = urllib.request.Request(f"{self.url}{path}", headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory) -> LabServer:
    """JupyterLab of this environment (``sys.prefix``), stopped after the module's tests."""
    jupyter_lab = Path(sys.executable).with_name("jupyter-lab")
    if not jupyter_lab.exists():
        pytest.skip(f"JupyterLab is not installed in this environment ({jupyter_lab} missing)")
    if not LABCONFIG.exists():
        pytest.skip(f"{LABCONFIG} missing: build the environment with 'make env' (it writes the JupyterLab settings)")
    home = tmp_path_factory.mktemp("jupyter-home")
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "KICC_NO_PROGRESS": "1",
    }
    env.pop("MPLBACKEND", None)
    # no "get notified about Jupyter news?" pop-up over the screenshot (and no request for it)
    notification = home / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false"}))
    port, token = _free_port(), secrets.token_hex(16)
    log = home / "jupyterlab.log"
    process = subprocess.Popen(
        [
            str(jupyter_lab),
            "--no-browser",
            *(["--allow-root"] if os.geteuid() == 0 else []),
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={PROJECT_ROOT}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
        ],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    server = LabServer(f"http://127.0.0.1:{port}", token, process, log)
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            pytest.fail(f"JupyterLab exited with {process.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            server.get_json("/api/status")
            break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"JupyterLab did not answer within 120 s: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.5)
    yield server
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_environment_jupyterlab_makes_jupytext_notebook_the_default_viewer_for_python(lab_server):
    """The setting JupyterLab itself serves (environment labconfig applied as defaults), not our file."""
    plugin = lab_server.get_json("/lab/api/settings/@jupyterlab/docmanager-extension:plugin")
    viewers = plugin["schema"]["properties"]["defaultViewers"]["default"]
    assert viewers.get("python") == "Jupytext Notebook"
    assert "defaultViewers" not in json.loads(plugin["raw"] or "{}"), (
        "must come from the environment, not user settings"
    )
    # and the kernel the notebooks name is the one of this environment
    specs = lab_server.get_json("/api/kernelspecs")["kernelspecs"]
    assert specs["python3"]["spec"]["display_name"] == "kicc-analysis"
    assert Path(specs["python3"]["spec"]["argv"][0]).resolve() == Path(sys.executable).resolve()


def test_notebook_opens_as_a_notebook_in_jupyterlab(lab_server, browser_page):
    page = browser_page
    page.open(
        f"{lab_server.url}/lab/tree/notebooks/01_cohort.py?token={lab_server.token}", wait_until="load", timeout_s=90
    )
    page.wait_for(".jp-Notebook .jp-Cell", timeout_s=120)
    page.wait_until("document.querySelectorAll('.jp-Notebook .jp-MarkdownCell').length >= 2", timeout_s=120)
    page.wait_for(".jp-Notebook .jp-MarkdownCell .jp-RenderedMarkdown h1", timeout_s=60)  # rendered, not source
    state = page.evaluate(
        """() => {
            const current = document.querySelector('.jp-MainAreaWidget:not(.lm-mod-hidden)');
            return {
                cells: document.querySelectorAll('.jp-Notebook .jp-Cell').length,
                markdownCells: document.querySelectorAll('.jp-Notebook .jp-MarkdownCell').length,
                fileEditors: document.querySelectorAll('.jp-MainAreaWidget .jp-FileEditor').length,
                tab: (document.querySelector('#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel') || {}).textContent,
                title: (document.querySelector('.jp-Notebook .jp-RenderedMarkdown h1') || {}).textContent,
                currentIsNotebook: !!(current && current.querySelector('.jp-Notebook')),
            };
        }"""
    )
    path = page.screenshot("jupyterlab_01_cohort", full_page=False)
    assert state["cells"] >= 4 and state["markdownCells"] >= 2, state  # JupyterLab renders only visible cells
    assert state["fileEditors"] == 0 and state["currentIsNotebook"], state
    assert state["tab"] == "01_cohort.py" and "Cohort" in state["title"], state
    assert path.stat().st_size > 10_000
    outside = [
        url
        for url in page.network_requests()
        if not url.startswith((lab_server.url, "data:", "blob:", "ws://127.0.0.1"))
    ]
    assert outside == [], f"JupyterLab asked the network for {outside}"


def test_progress_bars_are_jupyter_widgets_in_a_kernel(tmp_path):
    """tqdm.auto (kicc_analysis.progress) renders as a widget in JupyterLab, not as stderr text."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "from kicc_analysis.progress import progress_bar\nfor _ in progress_bar(range(3), show=True, desc='demo'):\n    pass"
        )
    ]
    env_backup = os.environ.pop("KICC_NO_PROGRESS", None)
    try:
        NotebookClient(
            notebook, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(tmp_path)}}
        ).execute()
    finally:
        if env_backup is not None:
            os.environ["KICC_NO_PROGRESS"] = env_backup
    outputs = notebook.cells[0].outputs
    assert any("application/vnd.jupyter.widget-view+json" in output.get("data", {}) for output in outputs), outputs
    assert not any(
        output.get("name") == "stderr" and "IProgress not found" in output.get("text", "") for output in outputs
    )
