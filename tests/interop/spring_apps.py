"""The Spring Boot apps of tests/interop/spring, started from their jars with properties given on the command line."""
from __future__ import annotations

from typing import Any

import maven_build
from http_json import get_json, request
from procs import Proc, Procs
from waits import until

START_TIMEOUT_S = 120.0  # a Spring Boot app with the Eureka client takes 10-30 s on 2 busy cores
# Start quickly and stay small: these flags change the JVM's speed, not how Spring or the Eureka client behave.
JVM_FLAGS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx256m", "-Xss512k")


class SpringApp:
    """One Spring Boot process; `name` names its log, `properties` become --key=value arguments."""

    def __init__(self, procs: Procs, module: str, name: str, port: int, properties: dict[str, str]) -> None:
        self.procs = procs
        self.module = module
        self.name = name
        self.port = port
        self.properties = {"server.port": str(port), **properties}
        self.proc: Proc | None = None
        self.logs: list[Proc] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        args = [f"--{key}={value}" for key, value in self.properties.items()]
        self.proc = self.procs.start(self.name, ["java", *JVM_FLAGS, "-jar", str(maven_build.jar(self.module)), *args])
        self.logs.append(self.proc)

    def wait_ready(self, path: str) -> None:
        """Wait until GET `path` answers 200, failing early if the process died."""
        def ready() -> Any:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited with {self.proc.popen.returncode if self.proc else None}")
            return request("GET", self.url + path)[0] == 200
        until(f"{self.name} answering {path}", ready, START_TIMEOUT_S, interval=0.5)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive()

    def log(self) -> str:
        """The current process's log (a restart starts a new one)."""
        return self.proc.log() if self.proc else ""

    def all_logs(self) -> str:
        """Every log of this app across restarts, oldest first."""
        return "".join(proc.log() for proc in self.logs)

    def get(self, path: str) -> Any:
        return get_json(self.url + path, timeout=30.0)
