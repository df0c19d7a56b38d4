"""Client users and roles over HTTP Basic, as Spring Cloud clients send them (`http://user:pass@host/eureka/`)."""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest

from apreg.cli import main
from apreg.server.users import Role, Users, add_user

from .harness import LocalCluster, eventually, instance_body


@pytest.fixture(scope="module")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("users") / "users.toml"
    for name, role in (("reader", "read"), ("svc", "write"), ("ops", "admin")):
        add_user(str(path), name, role, f"{name}-secret")
    return path


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_each_role_may_do_what_it_allows_and_no_more(users_file: Path) -> None:
    async with LocalCluster(2, users=str(users_file)) as c:
        register = instance_body("svc", "i-1")
        status, body, headers = await c.request(0, "POST", "/eureka/apps/SVC", json_body=register)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic realm=")
        assert json.loads(body)["error"] == "unauthorized"
        for wrong in (basic("svc", "nope"), basic("nobody", "svc-secret"), {"Authorization": "Basic !!!"}):
            assert (await c.request(0, "POST", "/eureka/apps/SVC", json_body=register, headers=wrong))[0] == 401
        assert (await c.request(0, "POST", "/eureka/apps/SVC", json_body=register,
                                headers=basic("reader", "reader-secret")))[0] == 403
        assert (await c.request(0, "POST", "/eureka/apps/SVC", json_body=register,
                                headers=basic("svc", "svc-secret")))[0] == 204
        assert (await c.request(0, "PUT", "/eureka/apps/SVC/i-1", headers=basic("svc", "svc-secret")))[0] == 200
        status, body, _ = await c.request(0, "PUT", "/eureka/apps/SVC/i-1/status?value=OUT_OF_SERVICE",
                                          headers=basic("svc", "svc-secret"))
        assert status == 403 and "needs admin" in json.loads(body)["detail"]
        assert (await c.request(0, "PUT", "/eureka/apps/SVC/i-1/status?value=OUT_OF_SERVICE",
                                headers=basic("ops", "ops-secret")))[0] == 200
        assert (await c.request(1, "GET", "/eureka/apps"))[0] == 401

        async def replicated() -> bool:  # peers reach each other: /v1/peer/ is not the users' business
            status, body, _ = await c.request(1, "GET", "/eureka/apps/SVC/i-1",
                                              headers=basic("reader", "reader-secret"))
            return status == 200 and json.loads(body)["instance"]["status"] == "OUT_OF_SERVICE"

        assert await eventually(replicated, 5)
        _, body, _ = await c.request(0, "GET", "/v1/status", headers=basic("reader", "reader-secret"))
        assert json.loads(body)["rejected"]["client_auth"] == 6  # 4 without a valid password, 2 short of a role


def test_users_add_writes_a_file_serve_can_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "users.toml"
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret\n"))
    assert main(["users", "add", "alice", "--role", "write", "--file", str(path), "--password-stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("other\n"))
    assert main(["users", "add", "bob", "--role", "read", "--file", str(path), "--password-stdin"]) == 0
    users = Users.load(str(path))
    assert {name: user.role for name, user in users.users.items()} == {"alice": Role.WRITE, "bob": Role.READ}
    assert users.verify("alice", "s3cret") is not None and users.verify("alice", "other") is None
    assert users.remembered("alice", "s3cret") is not None and users.remembered("bob", "other") is None
    assert "s3cret" not in path.read_text() and path.stat().st_mode & 0o077 == 0
    capsys.readouterr()
    path.write_text('[users.eve]\npassword = "plain"\nrole = "write"\n')
    assert main(["serve", "--port", "0", "--users", str(path)]) == 2
    assert "must be a hash from `apreg users add`" in capsys.readouterr().err


async def test_the_dashboard_offers_each_user_exactly_the_actions_the_server_takes_from_them(
        users_file: Path) -> None:
    """/v1/session lists an action only if the server then takes that request from that user; without --users
    it lists none (the page stays read-only)."""
    async with LocalCluster(1, users=str(users_file)) as c:
        offered = {}
        for name in ("reader", "svc", "ops"):
            status, body, _ = await c.request(0, "GET", "/v1/session", headers=basic(name, f"{name}-secret"))
            session = json.loads(body)
            assert status == 200 and session["users"] and session["user"] == name
            offered[name] = {action["name"]: action for action in session["actions"]}
        assert {name: sorted(actions) for name, actions in offered.items()} == {
            "reader": [], "svc": ["deregister"], "ops": ["deregister", "out_of_service", "up"]}
        assert (await c.request(0, "GET", "/v1/session"))[0] == 401
        everything = offered["ops"]
        for name in ("reader", "svc", "ops"):
            for action in ("out_of_service", "up", "deregister"):  # in this order, each on a fresh instance
                iid = f"{name}-{action}"
                await c.request(0, "POST", "/eureka/apps/SVC", json_body=instance_body("svc", iid),
                                headers=basic("svc", "svc-secret"))
                template = everything[action]
                path = template["path"].replace("{app}", "SVC").replace("{id}", iid)
                status = (await c.request(0, template["method"], path, headers=basic(name, f"{name}-secret")))[0]
                assert (status == 200) == (action in offered[name]), (name, action, status)
                assert status in (200, 403)
    async with LocalCluster(1) as open_cluster:
        _, body, _ = await open_cluster.request(0, "GET", "/v1/session")
        assert json.loads(body) == {"users": False, "user": None, "role": None, "actions": []}
