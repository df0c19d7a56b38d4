"""The dashboard in a real browser (Debian's headless Chromium, driven by Playwright) against a live 3-node cluster.

Skipped when Chromium or Playwright is missing; `.ci/run` installs both. `APREG_SCREENSHOT=FILE` also writes the
final screenshot there (the README's picture comes from it).
"""
from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from tests.server.harness import LocalCluster, instance_body

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright_api = pytest.importorskip("playwright.async_api", reason="pip install -e '.[browser]'")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="needs Debian's chromium (apt-get install chromium)")

SHORT = dict(eviction_interval=0.5, renewal_window=3.0)  # fleet leases: 1 s renewals, 3 s leases


async def _renew(c: LocalCluster, ids: list[str], renewing: set[str]) -> None:
    while True:
        for k, iid in enumerate(ids):
            if iid in renewing:
                await c.request(1 + k % 2, "PUT", f"/eureka/apps/FLEET/{iid}?status=UP")
        await asyncio.sleep(0.3)  # three times per interval: a loaded machine does not look like a silence


async def test_the_dashboard_follows_the_cluster_live(tmp_path: Path) -> None:
    async with LocalCluster(3, **SHORT) as c, playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        await page.goto(c.url(0) + "/")
        await page.wait_for_function("document.getElementById('node').textContent.startsWith('n0')")

        # Registered at another node: it appears without a reload, in the apps and in the latest changes.
        body = instance_body("orders", "o-1")
        body["instance"]["metadata"] = {"zone": "eu-1", "team": "shop"}
        assert (await c.request(2, "POST", "/eureka/apps/orders", json_body=body))[0] == 204
        await page.wait_for_selector('[data-app="ORDERS"]', timeout=3000)
        await page.wait_for_function("document.getElementById('changes').textContent.includes('register ORDERS/o-1')",
                                     timeout=3000)
        await page.click('[data-app="ORDERS"]')  # instances, zones and metadata on demand
        await page.wait_for_selector("text=zone=eu-1", timeout=3000)
        assert "team=shop" in await page.inner_text("#apps")

        # A fleet renewing elsewhere goes silent: node 0 engages self-preservation and the banner says so.
        ids = [f"f{k}" for k in range(20)]
        for k, iid in enumerate(ids):
            fleet = instance_body("fleet", iid, renewal=1, duration=3)
            assert (await c.request(1 + k % 2, "POST", "/eureka/apps/fleet", json_body=fleet))[0] == 204
        renewing = set(ids)
        renewer = asyncio.create_task(_renew(c, ids, renewing))
        try:
            await asyncio.sleep(3.0)
            assert await page.is_hidden("#preservation")
            renewing.clear()
            await page.wait_for_selector("#preservation:not([hidden])", timeout=10000)
        finally:
            renewer.cancel()
        banner = await page.inner_text("#preservation")
        assert banner.startswith("Self-preservation is ON since")
        assert "releases by" in await page.inner_text("#preservation-text")
        shot = tmp_path / "dashboard.png"
        await page.screenshot(path=str(shot), full_page=True)
        if os.environ.get("APREG_SCREENSHOT"):
            shutil.copyfile(shot, os.environ["APREG_SCREENSHOT"])
        assert problems == [], problems
        await browser.close()
