"""docs/deploy/: nothing here can build or run them, so each file is parsed and every flag, route and path it
uses is checked against `apreg serve` itself."""
from __future__ import annotations

import argparse
import configparser
import json
import re
import shlex
from pathlib import Path

import yaml

from apreg.cli import build_parser
from apreg.server.app import build_app
from apreg.server.node import Node
from apreg.server.settings import NodeSettings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "docs" / "deploy"


def serve_flags() -> set[str]:
    parser = build_parser()
    [subparsers] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {flag for action in subparsers.choices["serve"]._actions for flag in action.option_strings}


def routes() -> set[str]:
    app = build_app(Node(NodeSettings()))
    return {resource.canonical for resource in app.router.resources()}


def check_serve_command(argv: list[str]) -> None:
    """`serve` and its flags, each known to `apreg serve --help`, and each that takes a value given one."""
    assert argv[0] == "serve", argv
    flags = serve_flags()
    for token in argv[1:]:
        if token.startswith("--"):
            assert token in flags, f"{token} is not a flag of apreg serve"


def test_the_statefulset_uses_real_flags_probes_and_its_own_service() -> None:
    docs = {doc["kind"]: doc for doc in yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text()) if doc}
    docs.update({f"Service/{d['metadata']['name']}": d
                 for d in yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text()) if d and d["kind"] == "Service"})
    statefulset = docs["StatefulSet"]
    headless = docs[f"Service/{statefulset['spec']['serviceName']}"]
    assert headless["spec"]["clusterIP"] == "None"
    [container] = statefulset["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    check_serve_command(args)
    peers_dns = args[args.index("--peers-dns") + 1]  # the headless Service's SRV records for its named port
    [port] = headless["spec"]["ports"]
    assert peers_dns.startswith(f"_{port['name']}._tcp.{headless['metadata']['name']}."
                                f"{statefulset['metadata']['namespace']}.svc")
    assert port["port"] == container["ports"][0]["containerPort"] == int(args[args.index("--port") + 1])
    data_dir = args[args.index("--data-dir") + 1]  # on a volume of the pod's own, from the claim template
    [claim] = statefulset["spec"]["volumeClaimTemplates"]
    assert {"name": claim["metadata"]["name"], "mountPath": data_dir} in container["volumeMounts"]
    known = routes()
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] in known, f"{probe} path is not served"
    env = {e["name"] for e in container["env"]}
    assert "APREG_SECRET" in env and all(re.fullmatch(r"[^$]*(\$\((\w+)\))?[^$]*", a) for a in args)
    assert {m for a in args for m in re.findall(r"\$\((\w+)\)", a)} <= env


def test_the_systemd_unit_runs_serve_with_real_flags_and_reloads_by_sighup() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(DEPLOY / "apreg.service")
    argv = shlex.split(unit["Service"]["ExecStart"])
    assert argv[0].endswith("/apreg")
    check_serve_command(argv[1:])
    assert unit["Service"]["ExecReload"] == "/bin/kill -HUP $MAINPID"  # apreg serve re-reads its settings on HUP
    assert argv[argv.index("--data-dir") + 1] == "/var/lib/" + unit["Service"]["StateDirectory"]  # writable there


def test_the_dockerfile_copies_what_exists_and_runs_serve_with_real_flags() -> None:
    lines = [line.strip() for line in (DEPLOY / "Dockerfile").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    for line in lines:
        if line.startswith("COPY "):
            *sources, _ = line.split()[1:]
            assert all((ROOT / source).exists() for source in sources), line
    entrypoint = json.loads(next(line for line in lines if line.startswith("ENTRYPOINT "))[len("ENTRYPOINT "):])
    command = json.loads(next(line for line in lines if line.startswith("CMD "))[len("CMD "):])
    assert entrypoint == ["apreg"]
    check_serve_command(command)
