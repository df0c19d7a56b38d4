"""HTTPS for clients and peers, peers checked against the CA, and peer endpoints behind client certificates."""
from __future__ import annotations

import json
import ssl
from pathlib import Path

import aiohttp
import pytest

from apreg.cli import main

from .certs import Authority
from .harness import LocalCluster, eventually, instance_body


@pytest.fixture
def ca(tmp_path: Path) -> Authority:
    return Authority.create(tmp_path)


def tls(ca: Authority, label: str, **extra: object) -> dict[str, object]:
    issued = ca.issue(label)
    return {"tls_cert": str(issued.cert), "tls_key": str(issued.key), "tls_ca": str(ca.bundle), **extra}


async def test_a_tls_cluster_serves_https_and_replicates_over_it(ca: Authority) -> None:
    async with LocalCluster(2, client_ssl=ca.client_context(), **tls(ca, "node")) as c:
        assert c.url(0).startswith("https://")
        assert (await c.request(0, "POST", "/eureka/apps/SVC", json_body=instance_body("svc", "i-1")))[0] == 204
        assert await eventually(lambda: _has(c, 1, "i-1"), 5)
        _, body, _ = await c.request(1, "GET", "/v1/status")
        assert all(p["reachable"] and p["url"].startswith("https://") for p in json.loads(body)["peers"])


async def test_a_peer_whose_certificate_another_ca_signed_is_cut_off_both_ways(ca: Authority,
                                                                                tmp_path: Path) -> None:
    """Node 1 holds a certificate of another CA: node 0 will not talk to it (its pushes and pulls fail
    verification), and with --peer-mtls node 0 does not let it in either (no pulls, no pushes)."""
    (tmp_path / "other").mkdir()
    other = Authority.create(tmp_path / "other", "other CA")
    wrong = other.issue("impostor")
    overrides = {1: {"tls_cert": str(wrong.cert), "tls_key": str(wrong.key)}}
    async with LocalCluster(2, client_ssl=ca.client_context(), node_overrides=overrides,
                            **tls(ca, "node", peer_mtls=True)) as c:
        assert (await c.request(0, "POST", "/eureka/apps/SVC", json_body=instance_body("svc", "i-0")))[0] == 204
        assert await _post(c, 1, other, instance_body("svc", "i-1")) == 204
        link = c.nodes[0].links[c.nodes[0].settings.peers[0]]
        assert await eventually(lambda: _true("CERTIFICATE_VERIFY_FAILED" in link.last_error), 10)
        assert await eventually(lambda: _true(c.nodes[1].links[c.nodes[1].settings.peers[0]].failures > 1), 10)
        assert not await _has(c, 1, "i-0", context=other.client_context()) and not await _has(c, 0, "i-1")


async def test_an_expired_certificate_is_refused_by_clients(ca: Authority) -> None:
    expired = ca.issue("old", expired=True)
    overrides = {"tls_cert": str(expired.cert), "tls_key": str(expired.key), "tls_ca": str(ca.bundle)}
    async with LocalCluster(1, client_ssl=ca.client_context(), **overrides) as c:
        with pytest.raises(aiohttp.ClientConnectorCertificateError, match="expired"):
            await c.request(0, "GET", "/eureka/apps")


async def test_a_plain_http_client_gets_no_answer_from_a_tls_node(ca: Authority) -> None:
    async with LocalCluster(1, client_ssl=ca.client_context(), **tls(ca, "node")) as c:
        async with aiohttp.ClientSession() as plain:
            with pytest.raises(aiohttp.ClientError):
                async with plain.get(c.url(0).replace("https://", "http://") + "/eureka/apps") as response:
                    await response.read()


async def test_with_peer_mtls_peer_endpoints_need_a_client_certificate(ca: Authority) -> None:
    async with LocalCluster(2, client_ssl=ca.client_context(), **tls(ca, "node", peer_mtls=True)) as c:
        assert (await c.request(0, "POST", "/eureka/apps/SVC", json_body=instance_body("svc", "i-1")))[0] == 204
        assert await eventually(lambda: _has(c, 1, "i-1"), 5)  # the nodes present their certificates
        status, body, _ = await c.request(1, "POST", "/v1/peer/messages", data=b"\x80",
                                          headers={"Content-Type": "application/msgpack"})
        assert status == 403 and json.loads(body)["error"] == "forbidden"
        assert (await c.request(1, "GET", "/eureka/apps"))[0] == 200  # clients need none
        identity = ca.issue("operator")
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ca.client_context(identity))) as s:
            async with s.post(c.url(1) + "/v1/peer/messages", data=b"\x80",
                              headers={"Content-Type": "application/msgpack"}) as response:
                assert response.status == 400  # past the certificate check: a malformed message


def test_a_missing_certificate_file_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "0", "--tls-cert", str(tmp_path / "none.crt"),
                 "--tls-key", str(tmp_path / "none.key")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("apreg: cannot load --tls-cert") and error.count("\n") == 1
    assert main(["serve", "--tls-cert", "x.crt"]) == 2
    assert "tls-cert and tls-key go together" in capsys.readouterr().err


async def _post(c: LocalCluster, node: int, ca: Authority, body: dict[str, object]) -> int:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ca.client_context())) as s:
        async with s.post(c.url(node) + "/eureka/apps/SVC", json=body) as r:
            return r.status


async def _true(value: bool) -> bool:
    return value


async def _has(c: LocalCluster, node: int, iid: str, context: ssl.SSLContext | None = None) -> bool:
    if context is None:
        return iid in await c.ids(node)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as s:
        async with s.get(c.url(node) + "/eureka/apps/SVC/" + iid, headers={"Accept": "application/json"}) as r:
            return r.status == 200
