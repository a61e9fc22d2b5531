"""The live dashboard in a real browser (headless Chromium from the distribution's packages,
driven by Playwright) during the reference scenario (`phalanx demo`): the page must show the
two faulty agents quarantined, then replaced, as it happens. The checks read the page's DOM;
screenshots (desktop and phone) go to $ARTIFACTS (default target/artifacts).

Run: pip install playwright pytest; cargo build --release; pytest tests/browser
The binary is $PHALANX_BIN, else target/release/phalanx; Chromium is $CHROMIUM, else
/usr/bin/chromium."""

import os
import pathlib
import random
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest
from playwright.sync_api import sync_playwright

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("PHALANX_BIN", str(ROOT / "target" / "release" / "phalanx"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = pathlib.Path(os.environ.get("ARTIFACTS", ROOT / "target" / "artifacts"))
# Flags for a sandboxed machine with no network: no first-run work, no background fetches.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FAULTY = ["bft-agent-5", "bft-agent-6"]
REPLACEMENTS = ["bft-agent-8", "bft-agent-9"]


def free_base(n):
    """A port range base..base+n and base+100..base+100+n that is free now."""
    for _ in range(500):
        base = random.randint(20_000, 31_000)
        socks = []
        try:
            for p in [base + i for i in range(n)] + [base + 100 + i for i in range(n)]:
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return base
    raise RuntimeError("no free port range")


def reachable(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture
def demo():
    """`phalanx demo --keep` running in the background; yields (process, dashboard URL)."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    folder = tempfile.mkdtemp(prefix="phalanx-dashboard-")
    cluster = os.path.join(folder, "cluster")
    base = free_base(10)
    proc = subprocess.Popen(
        [BIN, "demo", "--dir", cluster, "--base-port", str(base), "--keep", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = f"http://127.0.0.1:{base + 100}/dashboard"
    try:
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
        subprocess.run([BIN, "down", "--dir", cluster, "--kill"], capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def row(page, agent):
    return page.locator(f'#members tr[data-agent="{agent}"]')


def test_the_dashboard_shows_the_faulty_agents_caught_and_replaced_during_the_demo(demo):
    proc, url = demo
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    deadline = time.time() + 60
    while not reachable(url):
        assert proc.poll() is None, "the demo stopped before its cluster came up"
        assert time.time() < deadline, f"{url} never answered"
        time.sleep(0.5)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 960})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)

        # The first poll fills the page: every genesis member listed, the health pill set.
        page.wait_for_selector('#members tr[data-agent="bft-agent-1"]', timeout=15_000)
        assert page.locator("#members tbody tr").count() >= 7
        assert page.inner_text("#health") in ("healthy", "degraded")
        page.screenshot(path=str(ARTIFACTS / "dashboard-start.png"), full_page=True)

        # The faulty agents are caught: quarantined in the members table, with committed
        # detections naming them, while the honest ones stay healthy.
        for agent in FAULTY:
            row(page, agent).and_(page.locator('[data-status="quarantined"]')).wait_for(timeout=240_000)
            page.locator(f'#detections tr[data-agent="{agent}"][data-action="quarantined"]').first.wait_for(
                timeout=30_000
            )
        for i in (1, 2, 3, 4, 7):
            assert row(page, f"bft-agent-{i}").get_attribute("data-status") != "quarantined"
        assert set(page.locator("body").get_attribute("data-quarantined").split(",")) == set(FAULTY)
        # Throughput was charted while the load ran.
        assert page.locator("#tps-chart path").count() == 1
        page.screenshot(path=str(ARTIFACTS / "dashboard-quarantine.png"), full_page=True)

        # Then replaced: the joiners vote, the faulty agents no longer do.
        for agent in REPLACEMENTS:
            page.locator(f'#members tr[data-agent="{agent}"][data-role="replica"], '
                         f'#members tr[data-agent="{agent}"][data-role="primary"]').first.wait_for(timeout=240_000)
        for agent in FAULTY:
            assert row(page, agent).get_attribute("data-role") == "removed"
        page.wait_for_function("document.getElementById('epoch').textContent !== '0'", timeout=30_000)
        assert page.inner_text("#digest-summary").endswith("agree"), page.inner_text("#digest-summary")
        page.screenshot(path=str(ARTIFACTS / "dashboard-replaced.png"), full_page=True)

        # Readable on a phone: nothing wider than the screen but the tables' own scrolling.
        phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
        phone.goto(url)
        phone.wait_for_selector('#members tr[data-agent="bft-agent-8"]', timeout=15_000)
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page is {width}px wide on a 390px screen"
        phone.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)
        assert not errors, f"script errors on the page: {errors}"
        browser.close()

    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, f"the demo failed: {out[-2000:]}"
