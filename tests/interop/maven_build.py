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


def _sources() -> list[Path]:
    return [path for path in SPRING.rglob("*") if path.is_file() and "target" not in path.relative_to(SPRING).parts]


def up_to_date() -> bool:
    """True when every jar exists and is newer than every pom and source file."""
    jars = [jar(module) for module in MODULES]
    if not all(path.exists() for path in jars):
        return False
    newest_source = max(path.stat().st_mtime for path in _sources())
    return min(path.stat().st_mtime for path in jars) > newest_source


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
