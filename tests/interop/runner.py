"""tests/interop/run [SCENARIO...]: Spring Cloud's Eureka client against a 3-node apreg on loopback.

Builds the Spring apps if stale, starts the cluster, runs the scenarios (all by default, always in their
fixed order), stops every process it started, prints one PASS/FAIL line per scenario and exits 1 if any failed.
"""
from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

import maven_build
from scenarios import SCENARIOS
from waits import Failed
from world import World


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally that stops the processes


def _run(world: World, name: str) -> tuple[bool, str]:
    start = time.monotonic()
    try:
        reason = SCENARIOS[name](world)
        ok = True
    except Failed as exc:
        reason, ok = str(exc), False
    except Exception as exc:  # a scenario that crashes has failed; say how
        reason, ok = f"{type(exc).__name__}: {exc}", False
    return ok, f"{'PASS' if ok else 'FAIL'} {name} ({time.monotonic() - start:.0f} s): {reason}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tests/interop/run", description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=f"any of: {', '.join(SCENARIOS)}")
    args = parser.parse_args(argv)
    unknown = [name for name in args.scenarios if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    chosen = [name for name in SCENARIOS if not args.scenarios or name in args.scenarios]

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even where started with SIGINT ignored (`cmd &`)
    log_dir = Path(tempfile.mkdtemp(prefix="apreg-interop-"))
    print(f"interop: logs in {log_dir}", flush=True)
    results: list[bool] = []
    world = World(log_dir)
    try:
        print(f"interop: build {maven_build.build(log_dir / 'mvn.log')}", flush=True)
        world.cluster.start()
        for name in chosen:
            ok, line = _run(world, name)
            results.append(ok)
            print(line, flush=True)
    except (Failed, RuntimeError, OSError) as exc:  # a failed build, a cluster that never syncs, no mvn
        print(f"FAIL setup: {exc}", flush=True)
        results.append(False)
    except (KeyboardInterrupt, SystemExit):
        print("FAIL interrupted", flush=True)
        results.append(False)
    finally:
        world.close()
    print(f"interop: {results.count(True)} passed, {results.count(False)} failed", flush=True)
    return 0 if results and all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
