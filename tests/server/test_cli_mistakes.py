"""Every mistake a new user made with `apreg` ends in one line naming it and a non-zero exit (issue 14)."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from apreg import cli
from apreg.server import settings

from .harness import free_port

APREG = [sys.executable, "-m", "apreg"]


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run the CLI in-process; it must exit non-zero with a single `apreg: ...` line and no traceback."""
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("apreg: ") and err.count("\n") == 1, err
    return err


def usage_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """argparse's errors: the subcommand's usage, then one `apreg CMD: error: ...` line, exit 2."""
    with pytest.raises(SystemExit) as stopped:
        cli.main(argv)
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.startswith(f"usage: apreg {argv[0]}") and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith(f"apreg {argv[0]}: error: ")
    return err


def test_port_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    assert "port must be 1-65535" in one_line_error(capsys, ["serve", "--port", "99999"])


def test_unknown_log_level_names_the_levels(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(capsys, ["serve", "--log-level", "verbose"])
    assert "--log-level: invalid choice: 'VERBOSE'" in err and "DEBUG" in err


@pytest.mark.parametrize("argv", [["serve"], ["cluster"], ["register", "app", "--host", "h", "--port", "1"], ["ls"],
                                  ["status"]])
def test_a_wrong_flag_shows_that_subcommands_usage(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert "unrecognized arguments: --bogus" in usage_error(capsys, [*argv, "--bogus"])


def test_every_flag_has_help_that_gives_its_default() -> None:
    parser = cli.build_parser()
    for name, command in parser.subcommands.items():  # type: ignore[attr-defined]
        for action in command._actions:
            if action.option_strings and action.dest != "help":
                assert action.help and ("default" in action.help or "required" in action.help), (name, action.dest)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli.main(["--version"])
    assert stopped.value.code == 0 and capsys.readouterr().out.strip() == "apreg 0.1.0"


@pytest.mark.parametrize("nodes", ["0", "-2"])
def test_cluster_needs_at_least_one_node(nodes: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert "--nodes must be at least 1" in one_line_error(capsys, ["cluster", "--nodes", nodes])


@pytest.mark.parametrize(("text", "message"), [
    ('lease-duration = "ninety"', "lease-duration in {path} must be a number, got 'ninety'"),
    ('port = "abc"', "port in {path} must be an integer, got 'abc'"),
    ('self-preservation = "no"', "unknown setting 'self-preservation' in {path} (did you mean "
                                 "'no-self-preservation'?)"),
    ("no-self-preservation = 1", "no-self-preservation in {path} must be true or false, got 1"),
    ("fanout = 1.5", "fanout in {path} must be an integer, got 1.5"),
    ("peers = [1, 2]", "peers in {path} must be a list of URLs"),
    ("lease_duration = 5", "unknown setting 'lease_duration' in {path} (did you mean 'lease-duration'?)"),
    ("max-peer-body-bytes = 5", "unknown setting 'max-peer-body-bytes' in {path} (keys are the flag names:"),
    ('log-level = "verbose"', "log-level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'VERBOSE'"),
    ('port = 1\n[apreg]\nhost = "h"', "config file {path} has keys both at the top level (port) and in [apreg]"),
    ("port = [", "config file {path} is not valid TOML"),
])
def test_config_mistakes(tmp_path: Path, text: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "node.toml"
    path.write_text(text + "\n")
    assert message.format(path=path) in one_line_error(capsys, ["serve", "--config", str(path)])


def test_a_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = one_line_error(capsys, ["serve", "--config", str(tmp_path / "nope.toml")])
    assert "cannot read config file" in err and "No such file" in err


@pytest.mark.parametrize("layout", ["top", "table"])
def test_config_keys_are_the_flag_names_at_the_top_level_or_under_apreg(tmp_path: Path, layout: str) -> None:
    keys = 'no-self-preservation = true\nlog-level = "debug"\nlog-format = "json"\npeers = "http://a:1/"\n'
    path = tmp_path / "node.toml"
    path.write_text(keys if layout == "top" else "[apreg]\n" + keys)
    loaded = settings.load({}, str(path), environ={})
    assert (loaded.self_preservation, loaded.log_level, loaded.log_format, loaded.peers) == \
        (False, "DEBUG", "json", ("http://a:1",))
    assert {f"--{flag.key}" for flag in settings.FLAGS} <= set(cli.build_parser().subcommands["serve"]  # type: ignore
                                                              ._option_string_actions)


@pytest.mark.parametrize(("peer", "message"), [
    ("ftp://h:1", "is not a base URL such as http://host:8761"),
    ("http://:8762", "is not a base URL"),
    ("http://h:99999", "has an invalid port"),
    ("http://h:8762/eureka/", "that is a Eureka service URL; give apreg nodes by their base URL, http://h:8762, "
                               "and Java Eureka servers in --eureka-peers"),
    ("http://h:8762/v1", "has a path (give the base URL only)"),
    ("http://127.0.0.1:8761", "is this node itself"),
    ("http://localhost:8761/", "is this node itself"),
])
def test_peer_urls_are_checked_at_start(peer: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert message in one_line_error(capsys, ["serve", "--peers", f"http://other:8761,{peer}"])


def test_port_0_logs_the_port_bound_and_json_lines_name_the_node(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([*APREG, "serve", "--port", "0", "--node-id", "j1", "--log-format", "json",
                                 "--access-log"], stderr=out)
    try:
        port = _bound_port(log)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert json.loads(response.read())["node_id"] == "j1"
        deadline = time.monotonic() + 5
        while "apreg.access" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert all(line["node"] == "j1" for line in lines[:-1]) and lines[-1]["message"].startswith("apreg stopping")
    access = [line for line in lines if line["logger"] == "apreg.access"]
    assert access and "GET /healthz" in access[0]["message"]


def _bound_port(log: Path) -> int:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            message = json.loads(line)["message"]
            if "listening on" in message:
                port = int(message.split("listening on http://127.0.0.1:")[1].split()[0])
                assert port != 0
                return port
        time.sleep(0.05)
    raise AssertionError(log.read_text())


def _register(registry: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*APREG, "register", "orders", "--host", "127.0.0.1", "--registry", registry, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_register_reports_the_registrys_400_and_waits_for_a_registry_to_come_up(tmp_path: Path) -> None:
    port = free_port()
    registry = f"http://127.0.0.1:{port}"
    waiting = _register(registry, "--port", "8080", "--wait", "20")  # nothing listens yet: it keeps trying
    time.sleep(1.0)
    node = subprocess.Popen([*APREG, "serve", "--port", str(port)], stderr=subprocess.DEVNULL)
    try:
        assert waiting.stdout is not None
        assert waiting.stdout.readline().startswith("registered ORDERS/127.0.0.1:orders:8080")
        waiting.send_signal(signal.SIGTERM)
        assert waiting.wait(timeout=10) == 0
        refused = _register(registry, "--port", "70000")
        _, err = refused.communicate(timeout=20)
        assert refused.returncode == 1 and err.count("\n") == 1, err
        assert err.startswith("apreg: the registry refused the registration: ") and "invalid_port" in err
        assert "no registry answered" not in err
    finally:
        for proc in (waiting, node):
            if proc.poll() is None:
                proc.kill()
        node.wait(timeout=10)
