"""The served tester in a real browser: `ml-provenance app` on a free loopback port, Debian Chromium driven by
Playwright, a safe and an inappropriate prompt typed and generated, results asserted, screenshot saved."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from deploy_app_helpers import tiny_run

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
SHOT = ROOT / "artifacts" / "screenshots" / "tester.png"

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                 reason=f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium) "
                                        "to run the browser test")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port, proc, timeout=60.0):
    "Wait until the server accepts connections (a GET of the page would run it in an extra kernel)."
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        if proc.poll() is not None: raise AssertionError(f"app exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1): return time.monotonic() - t
        except OSError: time.sleep(0.1)
    raise AssertionError(f"port {port} did not open within {timeout}s")


@pytest.fixture
def served_app(tmp_path):
    "`ml-provenance app` serving a tiny verified model; stopped (its whole process group) afterwards."
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[app]')")
    model, prov = tiny_run(tmp_path / "run")
    port = _free_port()
    log = open(tmp_path / "app.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "ml_provenance", "app", "--model-path", str(model),
                             "--provenance-path", str(prov), "--port", str(port), "--host", "127.0.0.1"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    try:
        _wait_listening(port, proc)
        yield f"http://127.0.0.1:{port}/"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try: proc.wait(10)
        except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL); proc.wait()
        log.close()


def _generate(page, prompt):
    page.fill(".mlp-prompt textarea", prompt)
    n = page.locator(".mlp-history tbody tr").count()
    page.get_by_role("button", name="Generate").click()
    page.wait_for_function("n => document.querySelectorAll('.mlp-history tbody tr').length > n", arg=n, timeout=30000)
    return page.locator(".mlp-output .mlp-result")


def test_tester_in_chromium(served_app):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu",
                                    "--disable-background-networking", "--disable-component-update"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1600})
            page.goto(served_app, timeout=60000)
            page.wait_for_selector(".mlp-prompt textarea", timeout=60000)
            assert "Merkle root" in page.inner_text(".mlp-info") and "verified" in page.inner_text(".mlp-info")

            safe = _generate(page, "How do plants make food?")
            assert safe.get_attribute("data-status") in ("safe", "warning")
            assert page.inner_text(".mlp-output .mlp-text").startswith("How do plants make food?")
            assert "Input checks: safe" in page.inner_text(".mlp-checks-box")

            bad = _generate(page, "I will kill you, you worthless idiot")
            assert bad.get_attribute("data-status") == "blocked"
            assert "input blocked" in page.inner_text(".mlp-output .mlp-blocked")
            checks = page.inner_text(".mlp-checks-box")
            assert "content_filter\tFAIL" in checks and "age rating ADULT" in checks
            marks = page.locator(".mlp-checks-box mark").all_inner_texts()
            assert "kill" in " ".join(marks).lower()
            assert page.locator(".mlp-history tbody tr").count() == 2

            page.fill(".mlp-prompt textarea", "   ")  # an empty prompt: one error line, nothing recorded
            page.get_by_role("button", name="Generate").click()
            page.wait_for_selector('.mlp-output [data-status="error"]', timeout=30000)
            assert "empty" in page.inner_text(".mlp-output") and page.locator(".mlp-history tbody tr").count() == 2
            _generate(page, "I will kill you, you worthless idiot")  # the shot shows the blocked request
            SHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOT), full_page=True)
        finally:
            browser.close()
    assert SHOT.stat().st_size > 10_000
