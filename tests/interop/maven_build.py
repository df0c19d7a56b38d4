"""Build the Spring apps when their sources are newer than their jars: offline from the local Maven cache when it
has everything, online (the first time on a machine, which downloads about 100 MB) otherwise."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

SPRING = Path(__file__).resolve().parent / "spring"
MODULES = ("provider", "consumer", "eureka-server")
OFFLINE_TIMEOUT_S = 600.0
ONLINE_TIMEOUT_S = 1800.0


def jar(module: str) -> Path:
    return SPRING / module / "target" / f"{module}.jar"


def _inputs(module: str) -> list[Path]:
    """What a module's jar is built from: its own pom and sources, and the parent pom."""
    root = SPRING / module
    return [SPRING / "pom.xml", root / "pom.xml", *(path for path in (root / "src").rglob("*") if path.is_file())]


def up_to_date() -> bool:
    """True when every jar exists and is newer than what it is built from (Maven leaves an unchanged jar alone,
    so each jar is compared with its own module only)."""
    for module in MODULES:
        built = jar(module)
        if not built.exists() or built.stat().st_mtime < max(path.stat().st_mtime for path in _inputs(module)):
            return False
    return True


def _mvn(offline: bool, log: Path, timeout: float) -> bool:
    argv = ["mvn", "-q", "-B", *(["-o"] if offline else []), "package"]
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        try:
            return subprocess.run(argv, cwd=SPRING, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  timeout=timeout).returncode == 0
        except subprocess.TimeoutExpired:
            return False


def build(log: Path) -> str:
    """Build what is stale; return a one-line account ("up to date", "offline in 21 s", ...). Raises on failure."""
    if up_to_date():
        return "up to date"
    start = time.monotonic()
    if _mvn(True, log, OFFLINE_TIMEOUT_S):
        return f"offline in {time.monotonic() - start:.0f} s"
    start = time.monotonic()
    if _mvn(False, log, ONLINE_TIMEOUT_S):
        return f"online (the local Maven cache lacked something) in {time.monotonic() - start:.0f} s"
    raise RuntimeError(f"mvn package failed; see {log}")
