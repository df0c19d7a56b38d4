"""The core stays pure: no module of apreg/core imports I/O, reads a clock, opens files or draws module-level
randomness. Time comes in as `now_ms` and randomness from an injected `random.Random` (style anchors, h11)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import apreg.core

CORE = Path(apreg.core.__file__).parent
FORBIDDEN_MODULES = {"asyncio", "aiohttp", "datetime", "http", "io", "logging", "msgpack", "os", "pathlib",
                     "selectors", "shutil", "signal", "socket", "ssl", "subprocess", "tempfile", "threading",
                     "time", "urllib"}
SHELL_PACKAGES = ("apreg.server", "apreg.peer", "apreg.eureka", "apreg.client")  # all of them do I/O
FORBIDDEN_CALLS = {"open", "print", "input", "breakpoint"}


def violations(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in FORBIDDEN_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            if node.module.split(".")[0] in FORBIDDEN_MODULES or node.module.startswith(SHELL_PACKAGES):
                found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_CALLS:
                found.append(f"{func.id}()")
            elif (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "random"
                  and func.attr != "Random"):
                found.append(f"random.{func.attr}() (module-level randomness: take a random.Random)")
    return found


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_module_does_no_io(path: Path) -> None:
    assert violations(ast.parse(path.read_text(), str(path))) == []


@pytest.mark.parametrize(("source", "found"), [
    ("import asyncio", ["import asyncio"]),
    ("import time\nnow = time.time()", ["import time"]),
    ("from socket import socket", ["from socket import ..."]),
    ("from apreg.server.node import Node", ["from apreg.server.node import ..."]),
    ("import random\nx = random.random()", ["random.random() (module-level randomness: take a random.Random)"]),
    ("import random\nrng = random.Random(4)", []),
    ("data = open('f').read()", ["open()"]),
])
def test_the_check_sees_each_kind_of_violation(source: str, found: list[str]) -> None:
    assert violations(ast.parse(source)) == found
