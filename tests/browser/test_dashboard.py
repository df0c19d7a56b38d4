"""The dashboard in a real browser (Debian's headless Chromium, driven by Playwright) against a live 3-node cluster.

Skipped when Chromium or Playwright is missing; `.ci/run` installs both. `APREG_SCREENSHOT=FILE` also writes the
final screenshot there (the README's picture comes from it).
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest

from apreg.server.users import add_user
from tests.server.harness import LocalCluster, free_port, instance_body

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
        assert await page.locator("[data-action]").count() == 0  # no --users: read-only
        assert "read-only (no --users)" in await page.inner_text("#session")

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


async def _instance(c: LocalCluster, node: int, iid: str) -> dict | None:
    status, body, _ = await c.request(node, "GET", f"/eureka/apps/ORDERS/{iid}", headers=_basic("ops"))
    return json.loads(body)["instance"] if status == 200 else None


def _basic(user: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{user}-pw".encode()).decode()}


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_admin_actions_are_real_clicks_for_those_allowed_and_absent_for_the_others(tmp_path: Path) -> None:
    users = tmp_path / "users.toml"
    for name, role in (("viewer", "read"), ("svc", "write"), ("ops", "admin")):
        add_user(str(users), name, role, f"{name}-pw")
    gone = f"http://127.0.0.1:{free_port()}/eureka/"  # a Java Eureka peer that is down: the page shows its state
    async with LocalCluster(2, users=str(users), node_overrides={0: {"eureka_peers": (gone,)}}) as c, \
            playwright_api.async_playwright() as pw:
        for iid in ("o-1", "o-2"):
            assert (await c.request(1, "POST", "/eureka/apps/orders", json_body=instance_body("orders", iid),
                                    headers=_basic("svc")))[0] == 204
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])

        async def page_as(user: str) -> Any:
            context = await browser.new_context(http_credentials={"username": user, "password": f"{user}-pw"})
            page = await context.new_page()
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            await page.goto(c.url(0) + "/")
            await page.wait_for_selector('[data-app="ORDERS"]', timeout=5000)
            await page.click('[data-app="ORDERS"]')
            await page.wait_for_selector('[data-instance="o-1"]', timeout=3000)
            return page

        problems: list[str] = []
        viewer = await page_as("viewer")  # read-only: sees everything, no button
        assert await viewer.locator("[data-action]").count() == 0
        assert "viewer (read), read-only" in await viewer.inner_text("#session")
        svc = await page_as("svc")  # write: may deregister, not override a status (that needs admin)
        assert await svc.locator('[data-instance="o-1"] [data-action]').all_inner_texts() == ["Deregister"]

        ops = await page_as("ops")
        await ops.click('[data-instance="o-1"] [data-action="out_of_service"]')
        assert await _until(lambda: _has_status(c, 1, "o-1", "OUT_OF_SERVICE"))  # replicated to the other node
        await ops.wait_for_selector('[data-instance="o-1"]:has-text("OUT_OF_SERVICE")', timeout=3000)
        await ops.click('[data-instance="o-1"] [data-action="up"]')
        assert await _until(lambda: _has_status(c, 1, "o-1", "UP"))
        ops.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await ops.click('[data-instance="o-2"] [data-action="deregister"]')
        assert await _until(lambda: _gone(c, 1, "o-2"))
        await ops.wait_for_selector('[data-instance="o-2"]', state="detached", timeout=3000)
        assert await ops.is_hidden("#action-error")
        row = ops.locator(f'[data-eureka-peer="{gone}"]')  # the actions at node 0 went to its Java peer's queue
        await row.locator("text=Cannot connect").wait_for(timeout=5000)
        assert (await row.locator("td").nth(1).inner_text()) == "no"
        assert problems == [], problems
        await browser.close()


async def _has_status(c: LocalCluster, node: int, iid: str, status: str) -> bool:
    found = await _instance(c, node, iid)
    return found is not None and found["status"] == status


async def _gone(c: LocalCluster, node: int, iid: str) -> bool:
    return await _instance(c, node, iid) is None
