"""Client authentication as Spring Cloud users configure it (`http://user:pass@host:8761/eureka/`): HTTP Basic
against a TOML file of users, each with an scrypt password hash and a role.

    [users.orders-service]
    password = "scrypt$16384$8$1$<salt, base64>$<hash, base64>"   # apreg users add orders-service --role write
    role = "write"

Roles, each allowing what the one before allows: `read` (every GET), `write` (registrations, renewals, cancels,
metadata, and Java Eureka peers' batches), `admin` (status overrides and their removal: an operator's act).
Peer endpoints (`/v1/peer/`) are not the users' business: `--secret` and `--peer-mtls` guard them. The health
probes stay open.

scrypt is slow on purpose (tens of milliseconds), and a fleet renews thousands of times a second with the same
few credentials; so a password that verified once is remembered by its SHA-256 for the process's life (a
bounded set), and later requests cost one constant-time comparison.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import tomllib
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Mapping

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MAX_REMEMBERED = 1_024  # verified (user, password digest) pairs kept


class Role(IntEnum):
    READ = 1
    WRITE = 2
    ADMIN = 3


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P),
                     base64.b64encode(salt).decode(), base64.b64encode(digest).decode()])


def _matches(password: str, stored: str) -> bool:
    scheme, n, r, p, salt, digest = stored.split("$")
    if scheme != "scrypt":
        raise ValueError(f"unknown password scheme {scheme!r}")
    expected = base64.b64decode(digest)
    actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                            maxmem=2**26, dklen=len(expected))
    return hmac.compare_digest(actual, expected)


@dataclass(frozen=True, slots=True)
class User:
    name: str
    password_hash: str
    role: Role


@dataclass(slots=True)
class Users:
    users: Mapping[str, User]
    _verified: dict[tuple[str, bytes], None] = field(default_factory=dict)

    @staticmethod
    def load(path: str) -> "Users":
        """Read and check the file; ValueError naming the problem for anything unusable."""
        try:
            with open(path, "rb") as handle:
                doc = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"cannot read users file {path}: {exc}") from None
        table = doc.get("users")
        if not isinstance(table, dict) or set(doc) - {"users"}:
            raise ValueError(f"{path}: expected only [users.NAME] tables")
        users = {}
        for name, entry in table.items():
            if not isinstance(entry, dict) or set(entry) != {"password", "role"}:
                raise ValueError(f"{path}: user {name!r} needs exactly password and role")
            try:
                role = Role[str(entry["role"]).upper()]
            except KeyError:
                raise ValueError(f"{path}: user {name!r} has role {entry['role']!r}; roles are read, write, "
                                 "admin") from None
            if not str(entry["password"]).startswith("scrypt$") or str(entry["password"]).count("$") != 5:
                raise ValueError(f"{path}: user {name!r}: password must be a hash from `apreg users add`")
            users[name] = User(name, str(entry["password"]), role)
        return Users(users)

    def remembered(self, name: str, password: str) -> User | None:
        """The user, if this password verified before: one hash and a dict lookup, fit for every request."""
        user = self.users.get(name)
        if user is not None and (name, hashlib.sha256(password.encode()).digest()) in self._verified:
            return user
        return None

    def verify(self, name: str, password: str) -> User | None:
        """The scrypt check (tens of milliseconds; hashlib releases the GIL for it: run it in a thread)."""
        user = self.users.get(name)
        if user is None:
            _matches(password, _DUMMY_HASH)  # the same work as for a real user: no timing tell
            return None
        if not _matches(password, user.password_hash):
            return None
        if len(self._verified) >= MAX_REMEMBERED:
            self._verified.clear()
        self._verified[(name, hashlib.sha256(password.encode()).digest())] = None
        return user


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(user, password) from an `Authorization: Basic` header, or None."""
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        name, colon, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (name, password) if colon else None


def required_role(method: str, path: str) -> Role | None:
    """What a request needs; None for the health probes and the peer endpoints (guarded otherwise)."""
    if path in ("/healthz", "/readyz") or path.startswith("/v1/peer/"):
        return None
    if method in ("GET", "HEAD", "OPTIONS"):
        return Role.READ
    if "/apps/" in path and path.rstrip("/").endswith("/status"):
        return Role.ADMIN
    return Role.WRITE


def add_user(path: str, name: str, role: str, password: str) -> None:
    """Write (or replace) one user's entry, keeping the others; the file is rewritten whole."""
    if not name or any(c in name for c in "\"\\\n\r\t"):
        raise ValueError("user names may not be empty or contain quotes, backslashes or control characters")
    if role.upper() not in Role.__members__:
        raise ValueError(f"role must be read, write or admin, not {role!r}")
    if not password:
        raise ValueError("the password may not be empty")
    entries = dict(Users.load(path).users) if os.path.exists(path) else {}
    entries[name] = User(name, hash_password(password), Role[role.upper()])
    lines = []
    for user in entries.values():
        lines += [f'[users."{user.name}"]', f'password = "{user.password_hash}"', f'role = "{user.role.name.lower()}"',
                  ""]
    temporary = f"{path}.tmp"
    with open(temporary, "w") as handle:
        handle.write("\n".join(lines))
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


_DUMMY_HASH = hash_password("not a password", salt=b"apreg-dummy-salt")
