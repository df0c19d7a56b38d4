"""Small JSON-over-HTTP helpers for talking to apreg and the Spring apps on loopback (stdlib only)."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

TIMEOUT_S = 5.0


def request(method: str, url: str, timeout: float = TIMEOUT_S, body: Any = None) -> tuple[int, bytes]:
    """Send one request with Accept: application/json (and `body` as JSON if given); return (status, body) for
    any HTTP answer."""
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def get_json(url: str, timeout: float = TIMEOUT_S) -> Any:
    """GET a JSON document, or None when the answer is 404."""
    status, body = request("GET", url, timeout)
    if status == 404:
        return None
    if status != 200:
        raise RuntimeError(f"GET {url}: {status} {body[:200]!r}")
    return json.loads(body)
