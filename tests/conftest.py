"""Shared fixtures.

Tests that need the project's shared reference material (``../shared``) go
through the ``shared_dir`` fixture, which skips them with a clear reason when
that folder is absent (as on a user's machine).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

os.environ.setdefault("KICC_NO_PROGRESS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("KICC_SHARED_DIR", PROJECT_ROOT.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """Return a path inside ``../shared``, skipping the test when it is absent."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared reference material not found at {path} (only available beside the project checkout)")
    return path


def covid_outlined_slice(name: str):
    """One outlined covid_ny_sbu axial slice (``<patient>_<file-stem>``): the CT from ``load_ct``, the reference
    labels (uint8 (y, x): 0 background, 1 right, 2 left) and ``keep`` (bool (y, x): the pixels that are not
    uncertain, the only ones to score). Skips the test when ``../shared`` is absent."""
    import numpy as np

    from kicc_analysis.imaging import load_ct

    folder = shared_path("data", "ct", "covid_ny_sbu")
    patient, stem = name.split("_", 1)
    reference = np.load(folder / "reference_outlines" / f"{name}.npy")
    keep = np.load(folder / "reference_outlines" / f"{name}_uncertain.npy") == 0
    return load_ct(folder / patient / "axial" / f"{stem}.dcm"), reference, keep


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ``../shared`` folder; skips the test with the reason when it is absent."""
    return shared_path()


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def demo_repository(tmp_path_factory) -> Path:
    """A small demo repository (8 patients), generated once per test session."""
    from kicc_analysis.demo import generate_demo

    root = tmp_path_factory.mktemp("demo") / "repository"
    generate_demo(root, n_patients=8, seed=19, show_progress=False)
    return root


@pytest.fixture(scope="session")
def default_demo_plan():
    """The default demo (522 patients, 17 sites, seed 19) as a plan: clinical table and patients -> studies -> series,
    no pixel data (~2 s; writing its DICOM takes minutes)."""
    from kicc_analysis.demo.generator import DEFAULT_PATIENTS, plan_demo

    return plan_demo(DEFAULT_PATIENTS, seed=19)


@pytest.fixture(scope="session", autouse=True)
def _derived_files_in_tmp(tmp_path_factory) -> Path:
    """Derived files (scan index, quantification cache...) of every test go to a temporary ``$KICC_CACHE``,
    never to ``~/.cache`` nor into an input repository (see ``kicc_analysis._cache.default_cache_dir``)."""
    folder = tmp_path_factory.mktemp("kicc_cache")
    os.environ["KICC_CACHE"] = str(folder)
    return folder


def _entries_on_disk(root: Path, index_dir: Path | None) -> set[str]:
    """Every directory entry under ``root`` that a scan must account for, found independently of the scanner
    (``os.lstat``, symlinks not followed): regular files, symlinks, FIFOs..., and folders that cannot be
    entered or are index folders (one entry each, their content is not the scan's)."""
    out: set[str] = set()
    stack = [(str(root), "")]
    while stack:
        folder, prefix = stack.pop()
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            st = os.lstat(path)
            rel = prefix + name
            if stat.S_ISDIR(st.st_mode):
                if name == ".kicc_index" or (index_dir is not None and Path(path) == index_dir):
                    out.add(rel)
                    continue
                try:
                    os.listdir(path)
                except OSError:
                    out.add(rel)
                    continue
                stack.append((path, rel + "/"))
            else:
                out.add(rel)
    return out


def _inodes(paths) -> set[tuple[int, int]]:
    return {(s.st_dev, s.st_ino) for s in (os.stat(p) for p in paths)}


def assert_scan_accounts_for_every_entry(scan, *, follow_symlinks: bool = False, index_dir=None) -> None:
    """The scan invariant: files on disk = indexed + skipped (each once), whatever the tree holds.

    Without ``follow_symlinks`` the relative paths of ``instances`` and ``skipped`` are exactly the entries on
    disk; with it, every regular file reachable through symlinked folders is indexed or skipped once.
    """
    from kicc_analysis.repository import fs_path

    rel = [fs_path(r) for r in list(scan.instances["relpath"]) + list(scan.skipped["relpath"])]
    assert len(rel) == len(set(rel)), "an entry is listed twice"
    assert len(rel) == scan.n_files, (len(rel), scan.n_files)
    index = Path(index_dir).expanduser().resolve() if index_dir is not None else None
    on_disk = _entries_on_disk(scan.root, index)
    if not follow_symlinks:
        assert set(rel) == on_disk, {
            "not accounted for": sorted(on_disk - set(rel))[:5],
            "extra": sorted(set(rel) - on_disk)[:5],
        }
        return
    # following links: every regular file reachable (loop-safe) is accounted for once, by inode
    reachable: set[tuple[int, int]] = set()
    seen_dirs: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(scan.root, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen_dirs:
            dirnames[:] = []
            continue
        seen_dirs.add((st.st_dev, st.st_ino))
        dirnames[:] = [d for d in dirnames if d != ".kicc_index"]
        for f in filenames:
            p = os.path.join(dirpath, f)
            if os.path.isfile(p):
                reachable.add((os.stat(p).st_dev, os.stat(p).st_ino))
    listed = _inodes(os.path.join(scan.root, r) for r in rel if os.path.isfile(os.path.join(scan.root, r)))
    assert reachable == listed


def checked_scan(root, **kwargs):
    """``scan_repository`` followed by :func:`assert_scan_accounts_for_every_entry` (used by every scan test)."""
    from kicc_analysis.repository import scan_repository

    scan = scan_repository(root, **kwargs)
    assert_scan_accounts_for_every_entry(
        scan, follow_symlinks=kwargs.get("follow_symlinks", False), index_dir=kwargs.get("index_dir")
    )
    return scan


# --------------------------------------------------------------------------------------------------
# The one headless-browser fixture (Debian's /usr/bin/chromium driven over the DevTools protocol).
# --------------------------------------------------------------------------------------------------

CHROMIUM = Path(os.environ.get("KICC_CHROMIUM", "/usr/bin/chromium"))
TEST_OUTPUT_DIR = Path(os.environ.get("KICC_TEST_OUTPUT", PROJECT_ROOT / "tests" / "_output"))
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


class BrowserPage:
    """One tab of the shared headless Chromium, with the few operations tests need.

    Every network request the page makes is recorded in :attr:`requests` (URL strings, in order), so a
    test can assert that a self-contained page asks for nothing from the network.
    ``page`` is the underlying Playwright page for anything not covered here.
    """

    def __init__(self, page, output_dir: Path) -> None:
        self.page = page
        self.output_dir = output_dir
        self.requests: list[str] = []
        self.failed_requests: list[str] = []
        self.console_errors: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("requestfailed", lambda request: self.failed_requests.append(request.url))
        page.on("console", lambda msg: self.console_errors.append(msg.text) if msg.type == "error" else None)

    def open(self, target: str | Path, *, wait_until: str = "load", timeout_s: float = 30) -> BrowserPage:
        """Load a URL (``http://…``, ``file://…``) or a local file path and wait for ``wait_until``."""
        url = target.resolve().as_uri() if isinstance(target, Path) else str(target)
        self.page.goto(url, wait_until=wait_until, timeout=timeout_s * 1000)
        return self

    def evaluate(self, script: str, arg=None):
        """Evaluate a JavaScript expression or function in the page and return its JSON value."""
        return self.page.evaluate(script, arg)

    def wait_for(self, selector: str, *, timeout_s: float = 30, state: str = "visible") -> None:
        """Wait until a CSS ``selector`` matches an element in ``state``; raises on timeout."""
        self.page.wait_for_selector(selector, timeout=timeout_s * 1000, state=state)

    def wait_until(self, script: str, *, timeout_s: float = 30) -> None:
        """Wait until the JavaScript expression ``script`` is truthy in the page; raises on timeout."""
        self.page.wait_for_function(script, timeout=timeout_s * 1000)

    def set_viewport(self, width: int, height: int = 800) -> None:
        """Resize the viewport (CSS px), e.g. ``set_viewport(390)`` for a phone."""
        self.page.set_viewport_size({"width": int(width), "height": int(height)})

    def screenshot(self, name: str, *, full_page: bool = True) -> Path:
        """Save a PNG under the test-output folder, print its path and return it."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        path = self.output_dir / (name if name.endswith(".png") else f"{name}.png")
        self.page.screenshot(path=str(path), full_page=full_page)
        print(f"screenshot: {path}")
        return path

    def network_requests(self, *, external_only: bool = False) -> list[str]:
        """Requests made so far; ``external_only`` keeps those leaving the machine (not file:, data:, blob:, loopback)."""
        if not external_only:
            return list(self.requests)
        local = ("file:", "data:", "blob:", "about:", "http://127.0.0.1", "http://localhost", "ws://127.0.0.1")
        return [url for url in self.requests if not url.startswith(local)]

    def close(self) -> None:
        self.page.close()


class Browser:
    """The session's headless Chromium: ``new_page()`` gives a fresh tab with its own recorded requests."""

    def __init__(self, context, output_dir: Path) -> None:
        self.context = context
        self.output_dir = output_dir

    def new_page(self, *, width: int = 1280, height: int = 800, output_dir: Path | None = None) -> BrowserPage:
        page = self.context.new_page()
        wrapped = BrowserPage(page, output_dir or self.output_dir)
        wrapped.set_viewport(width, height)
        return wrapped


def _launch_chromium(user_data_dir: Path, log_path: Path):
    """Start Chromium headless and return (process, DevTools HTTP endpoint)."""
    import subprocess
    import time

    log = log_path.open("wb")
    process = subprocess.Popen(
        [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}", "about:blank"],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    port_file = user_data_dir / "DevToolsActivePort"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if port_file.exists() and port_file.read_text().strip():
            return process, f"http://127.0.0.1:{port_file.read_text().split()[0]}"
        time.sleep(0.05)
    process.kill()
    process.wait()
    tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
    pytest.skip(f"{CHROMIUM} did not start a DevTools endpoint within 60 s: {' | '.join(tail) or 'no output'}")


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """Headless Debian Chromium (``/usr/bin/chromium``, or ``$KICC_CHROMIUM``) for page tests.

    Launched once per test session with a fresh profile and no network side traffic, driven over the
    Chrome DevTools Protocol by Playwright's Python client (which never downloads a browser here: it only
    connects). Skips with the reason when Chromium or the client is missing (``.ci/run`` installs
    Chromium when it can). Screenshots go to ``tests/_output/`` (git-ignored; ``$KICC_TEST_OUTPUT``).

    Example::

        def test_page(browser):
            page = browser.new_page(width=390)
            page.open(Path("results/index.html"))
            assert page.evaluate("document.title")
            page.screenshot("results_index_phone")
            assert page.network_requests(external_only=True) == []
    """
    if not CHROMIUM.exists():
        pytest.skip(
            f"headless browser tests need Chromium at {CHROMIUM} (Debian package 'chromium'; .ci/run installs it)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.skip(f"headless browser tests need the 'playwright' Python client (dev extra): {exc}")
    profile = tmp_path_factory.mktemp("chromium-profile")
    process, endpoint = _launch_chromium(profile, profile.parent / "chromium.log")
    manager = sync_playwright().start()
    try:
        cdp = manager.chromium.connect_over_cdp(endpoint)
        context = cdp.contexts[0] if cdp.contexts else cdp.new_context()
        yield Browser(context, TEST_OUTPUT_DIR)
        cdp.close()
    finally:
        manager.stop()
        process.terminate()
        try:
            process.wait(timeout=10)
        except Exception:
            process.kill()
            process.wait()


@pytest.fixture()
def browser_page(browser, request):
    """A fresh tab of the shared browser; screenshots go to ``tests/_output/<test name>/``."""
    name = request.node.name.replace("/", "_").replace("[", "_").replace("]", "")
    page = browser.new_page(output_dir=TEST_OUTPUT_DIR / name)
    yield page
    page.close()


# --------------------------------------------------------------------------------------------------
# The one DICOMweb server fixture: a real Orthanc (Debian packages orthanc + orthanc-dicomweb).
# --------------------------------------------------------------------------------------------------

ORTHANC = Path(os.environ.get("KICC_ORTHANC", "/usr/sbin/Orthanc"))
ORTHANC_PLUGIN_CANDIDATES = (
    Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so"),
    Path("/usr/lib/orthanc/libOrthancDicomWeb.so"),
    Path("/usr/local/share/orthanc/plugins/libOrthancDicomWeb.so"),
)
#: Credentials of the test server (HTTP basic authentication); tests send them through $KICC_DICOMWEB_HEADER.
ORTHANC_USER = "kicc-test"
ORTHANC_SECRET = "s3cr3t-Token-7f1c9b2e"


class OrthancServer:
    """An Orthanc server on 127.0.0.1 with the DICOMweb plugin, its storage in a temporary folder.

    ``dicomweb_url`` is the ``dicomweb+http://…/dicom-web`` address; ``auth_header`` the ``Name: value`` line
    (HTTP basic authentication) that :envvar:`KICC_DICOMWEB_HEADER` must hold. ``stop()`` / ``start()`` restart it
    on the same port with the same storage.
    """

    def __init__(self, folder: Path, plugin: Path) -> None:
        import base64
        import json
        import socket

        self.folder = folder
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.dicomweb_url = f"dicomweb+{self.url}/dicom-web"
        token = base64.b64encode(f"{ORTHANC_USER}:{ORTHANC_SECRET}".encode()).decode()
        self.auth_header = f"Authorization: Basic {token}"
        self.config = folder / "orthanc.json"
        storage = folder / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            json.dumps(
                {
                    "Name": "kicc-test",
                    "StorageDirectory": str(storage),
                    "IndexDirectory": str(storage),
                    "HttpPort": self.port,
                    "HttpServerEnabled": True,
                    "RemoteAccessAllowed": False,
                    "AuthenticationEnabled": True,
                    "RegisteredUsers": {ORTHANC_USER: ORTHANC_SECRET},
                    "DicomServerEnabled": False,
                    "HttpThreadsCount": 4,
                    "Plugins": [str(plugin)],
                    "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
                }
            )
        )
        self.log = folder / "orthanc.log"
        self.process = None
        self.rejected: list[Path] = []

    def _session(self):
        import requests

        session = requests.Session()
        name, _, value = self.auth_header.partition(": ")
        session.headers[name] = value
        return session

    def start(self, timeout_s: float = 60) -> None:
        import subprocess
        import time

        import requests

        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(ORTHANC), str(self.config)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        session = self._session()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if session.get(f"{self.url}/dicom-web/studies?limit=1", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        tail = self.log.read_text(errors="replace").strip().splitlines()[-3:]
        pytest.skip(f"Orthanc did not answer within {timeout_s} s: {' | '.join(tail) or 'no output'}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except Exception:
                self.process.kill()
                self.process.wait()
        self.process = None

    def upload(self, files) -> list[dict]:
        """POST each file to ``/instances``; returns Orthanc's answers (``ID``, ``ParentSeries``, ``ParentStudy``…).
        Files Orthanc refuses as not DICOM (HTTP 400) are listed in ``self.rejected``."""
        session = self._session()
        studies = []
        for path in files:
            answer = session.post(f"{self.url}/instances", data=Path(path).read_bytes(), timeout=60)
            if answer.status_code == 400:
                self.rejected.append(Path(path))
                continue
            answer.raise_for_status()
            studies.append(answer.json())
        return studies

    def delete(self, level: str, orthanc_id: str) -> None:
        """Delete a resource by its Orthanc id (``level``: studies, series or instances)."""
        self._session().delete(f"{self.url}/{level}/{orthanc_id}", timeout=60).raise_for_status()


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory):
    """A running Orthanc with the DICOMweb plugin holding a tiny demo repository (3 patients), stopped at the end.

    ``orthanc.repository`` is the demo folder (its ``dicom/`` tree is what the server holds). Skips with the reason
    when the Orthanc program or its DICOMweb plugin is missing (``.ci/run`` installs the Debian packages ``orthanc``
    and ``orthanc-dicomweb`` when it can).
    """
    if not ORTHANC.exists():
        pytest.skip(f"DICOMweb tests need Orthanc at {ORTHANC} (Debian package 'orthanc'; .ci/run installs it)")
    plugin = next((p for p in ORTHANC_PLUGIN_CANDIDATES if p.exists()), None)
    if plugin is None:
        pytest.skip(
            "DICOMweb tests need Orthanc's DICOMweb plugin (Debian package 'orthanc-dicomweb'; .ci/run installs it)"
        )
    pytest.importorskip("dicomweb_client", reason="DICOMweb tests need the dicomweb-client package (dev extra)")
    from kicc_analysis.demo import generate_demo

    folder = tmp_path_factory.mktemp("orthanc")
    repository = folder / "repository"
    generate_demo(repository, n_patients=3, seed=19, show_progress=False)
    server = OrthancServer(folder / "server", plugin)
    server.repository = repository
    server.start()
    try:
        files = sorted(p for p in (repository / "dicom").rglob("*") if p.is_file())
        server.upload(files)
        yield server
    finally:
        server.stop()
