"""The README's `apreg.client` example, run as written against two live nodes (only the URLs differ)."""
from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from tests.server.harness import LocalCluster, eventually

README = Path(__file__).resolve().parents[2] / "README.md"


def example() -> str:
    section = README.read_text().split("## Use it from Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


async def test_the_readme_client_example_registers_discovers_and_watches() -> None:
    async with LocalCluster(2) as c:
        code = example().replace('"http://127.0.0.1:8761", "http://127.0.0.1:8762"', f'"{c.url(0)}", "{c.url(1)}"')
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        lines = out.decode().splitlines()
        assert "ORDERS is now ['orders-1']" in lines and lines[-1] == "calling http://127.0.0.1:8080"
        assert await eventually(lambda: _gone(c))  # leaving the block cancelled it


async def _gone(c: LocalCluster) -> bool:
    return all([await c.ids(n) == set() for n in range(2)])
