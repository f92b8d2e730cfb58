"""A student's first hour, in a real JupyterLab driven through Debian's chromium by Playwright.

A fresh student edition (module 01 of this repository) is served by JupyterLab on 127.0.0.1 from
the environment `make install` set up (which holds the workspace's viewer settings), with a home,
Jupyter config, data and settings folders of its own, so nothing of the user's home takes part.
The student double-clicks the module source, sees a notebook, runs every cell (the stubs fail),
pastes the solution into the solution cell, saves with Ctrl+S, runs every cell again (all pass),
then runs `tito export`, `tito test` and `tito submit` on the saved file. Screenshots of each
step land in build/e2e/ (CI keeps them as artifacts). `make e2e` installs chromium first.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tito"))   # the tito tests' helpers
from tito_support import REPO, copy_tree, run_tito  # noqa: E402

pytestmark = pytest.mark.slow

MODULE = "01_tensor"
SOURCE = f"modules/{MODULE}/tensor_dev.py"
SHOTS = REPO / "build" / "e2e"
COURSE_FILES = ("settings.ini", "pyproject.toml", "Makefile", ".gitignore", "grading/nbgrader_config.py",
                ".jupyter/labconfig/default_setting_overrides.json")
SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("the browser tests need Debian's chromium: run `make e2e` (it installs it) or apt-get install -y chromium")
    return path


@pytest.fixture(scope="module")
def edition(tmp_path_factory) -> Path:
    """`tito student-edition` of this repository's first module, as an instructor hands it out."""
    course = tmp_path_factory.mktemp("course") / "tinytorch"
    for name in COURSE_FILES:
        (course / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, course / name)
    for name in ("tito", "tinytorch", f"modules/{MODULE}", f"tests/modules/{MODULE}"):
        copy_tree(REPO / name, course / name)
    out = tmp_path_factory.mktemp("student") / "tinytorch-student"
    result = run_tito(course, "student-edition", str(out))
    assert result.returncode == 0, str(result)
    return out


@pytest.fixture(scope="module")
def lab(edition, tmp_path_factory):
    """(url, token) of a JupyterLab serving the edition; stopped after the module's tests."""
    home = tmp_path_factory.mktemp("home")
    settings = home / "lab-user-settings"
    # The "get notified about Jupyter news?" popup would cover the notebook's toolbar.
    news = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text('{"fetchNews": "false", "checkForUpdates": false}')
    # Every cell in the page, so the test can read any cell's output (JupyterLab renders only
    # the cells in view by default); what opens, and how, is unchanged.
    windowing = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    windowing.parent.mkdir(parents=True)
    windowing.write_text('{"windowingMode": "none"}')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "TITO_"))}
    env.update(HOME=str(home), JUPYTER_CONFIG_DIR=str(home / ".jupyter"), JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"), TITO_AUTOGRADING="1",
               PYTHONPATH=str(edition), PATH=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token = secrets.token_hex(16)
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={edition}"]
    if os.geteuid() == 0:
        command.append("--allow-root")    # CI runs as root
    log = (home / "lab.log").open("w")
    server = subprocess.Popen(command, cwd=edition, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited with {server.returncode}:\n{(home / 'lab.log').read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer within 90 s:\n{(home / 'lab.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield url, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def page(lab):
    from playwright.sync_api import sync_playwright

    url, token = lab
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("*.png"):
        old.unlink()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 1400, "height": 900})
        tab.set_default_timeout(60_000)
        tab.goto(f"{url}/lab/tree/modules/{MODULE}?token={token}")
        tab.wait_for_selector(".jp-DirListing-item")
        yield tab
        browser.close()


def _shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def _run_all_cells(page) -> None:
    """Run > Run All Cells, then wait until no cell is queued or running and the kernel is idle."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    page.wait_for_function("""() => {
        const prompts = [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-InputPrompt')];
        return prompts.some(p => /\\[\\d+\\]/.test(p.textContent)) && !prompts.some(p => p.textContent.includes('*'));
    }""", timeout=120_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", state="attached")


def _notebook_text(page) -> str:
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").inner_text()


def _solution(edition: Path) -> tuple[int, str]:
    """(index, text) of module 01's solution cell as the course author wrote it, markers removed."""
    import jupytext

    stub = jupytext.read(edition / SOURCE)
    index = next(i for i, c in enumerate(stub.cells) if c.metadata.get("nbgrader", {}).get("solution"))
    grade_id = stub.cells[index].metadata["nbgrader"]["grade_id"]
    full = jupytext.read(REPO / SOURCE)
    cell = next(c for c in full.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    text = "\n".join(line for line in cell.source.splitlines() if line.strip() not in SOLUTION_MARKERS)
    return index, text


def test_a_student_works_a_module_in_jupyterlab(edition, page):
    source = edition / SOURCE
    stub_text = source.read_text()

    # 1. A double click on the module source opens it as a notebook, not in the text editor.
    page.locator(".jp-DirListing-item", has_text="tensor_dev.py").dblclick()
    page.wait_for_function("document.querySelectorAll('.jp-NotebookPanel .jp-Cell').length >= 10")
    _shot(page, "01-double-click-opens-a-notebook")
    assert page.locator(".jp-NotebookPanel").count() == 1
    assert page.locator(".jp-FileEditor").count() == 0
    doctor = run_tito(edition, "system", "doctor")
    assert any(line.startswith("OK") and "default viewer" in line for line in doctor.stdout.splitlines()), str(doctor)

    # 2. Run every cell: the first test meets the stub's NotImplementedError.
    _run_all_cells(page)
    _shot(page, "02-run-all-cells-on-the-stubs")
    assert "NotImplementedError" in _notebook_text(page)

    # 3. Paste the solution into the solution cell and save with Ctrl+S (jupytext writes the .py).
    index, solution = _solution(edition)
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    cell.scroll_into_view_if_needed()
    cell.locator(".cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(solution)
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    while source.read_text() == stub_text and time.monotonic() < deadline:
        time.sleep(0.3)
    _shot(page, "03-solution-pasted-and-saved")
    saved = source.read_text()
    assert saved != stub_text, "Ctrl+S did not save the .py"
    assert solution.splitlines()[-1].strip() in saved
    assert not source.with_suffix(".ipynb").exists(), "the recommended workflow pairs with no .ipynb"

    # 4. Restart and run every cell again: every inline test passes.
    page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Restart Kernel…").first.click()
    page.locator(".jp-Dialog-button.jp-mod-accept").click()
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", state="attached")
    _run_all_cells(page)
    _shot(page, "04-run-all-cells-with-the-solution")
    text = _notebook_text(page)
    assert "Traceback" not in text and "NotImplementedError" not in text, text[-2000:]

    # 5. The saved file is what tito exports, tests and submits.
    exported = run_tito(edition, "export", MODULE)
    assert exported.returncode == 0, str(exported)
    tested = run_tito(edition, "test", MODULE)
    assert tested.returncode == 0, str(tested)
    submitted = run_tito(edition, "submit", MODULE)
    assert submitted.returncode == 0, str(submitted)
    assert "all visible tests pass" in submitted.stdout
    assert (edition / "submit" / "tensor_dev.ipynb").is_file()

    # 6. The file browser shows the notebook to upload.
    page.goto(page.url.split("/lab")[0] + "/lab/tree/submit")
    page.wait_for_selector(".jp-DirListing-item:has-text('tensor_dev.ipynb')")
    _shot(page, "05-submit-folder-holds-the-upload")
