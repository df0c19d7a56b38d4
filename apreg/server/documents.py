"""Rendered Eureka documents, versioned rather than timed: a change re-renders what it touched, not the registry.

Eureka answers reads from a response cache up to 30 s stale; rendering 100,000 instances per read is not an
option either (seconds per full fetch). Here each app's instances are split into blocks of about `block_size`
(by the hash of the instance id, so a block's membership does not depend on arrival order), and each block is
rendered once per format and kept only deflated (`gzip_join.Piece`). A change to an instance marks its block
dirty; the next read of a document that contains it re-renders that block alone, and joins the pieces (a CRC
combine per piece, no recompression) into the gzip document. Plain-text answers inflate the pieces.

The same blocks serve `GET apps/{APP}`, and the delta is built the same way from the feed's window (the latest
change per instance in the last 3 minutes), so a poll after a change costs that change, not the window.

What a document may lag behind, and by how much (README, "HTTP API"):
- renewals invalidate nothing, so each instance's `leaseInfo` shows its lease as it was at some moment within
  the last `refresh_ms` (the node's renewal interval): the node re-renders blocks older than half of that in
  the background (`refresh`, every quarter of it), so no read waits for it;
- the whole-registry document is rebuilt when the registry changed, but under constant churn it is served as of
  its last build for at most `max_age_ms` (`--read-cache-max-age`; 0 rebuilds on every change); the delta and
  single apps are never served old.

Work is handed out as generators that yield after every block, so the shell can give the event loop back
between blocks (`steps.run_steps`): no single step costs more than one block's render.
"""
from __future__ import annotations

import gzip
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Generator, Generic, Hashable, Iterable, Mapping, TypeVar

from apreg.core.effects import Action, Change
from apreg.core.entry import Entry
from apreg.core.instance import InstanceInfo, InstanceKey, Status
from apreg.core.replica import Replica
from apreg.eureka import render
from apreg.eureka.views import InstanceView, LeaseTimes
from apreg.eureka.gzip_join import Piece, compress, concat, gzip_member, stored

from .feed import ChangeFeed, FeedEvent

BLOCK_SIZE = 128
GZIP_LEVEL = 6
# What Eureka's registry marks each kind of change with in `apps/delta`.
DELTA_ACTIONS = {Action.REGISTER: "ADDED", Action.MODIFY: "MODIFIED", Action.STATUS: "MODIFIED",
                 Action.CANCEL: "DELETED", Action.EVICT: "DELETED"}
Steps = Generator[None, None, "Piece | None"]
M = TypeVar("M")


def instance_view(replica: Replica, info: InstanceInfo, action: str | None = None) -> InstanceView:
    """An instance with this node's lease times, ready for the renderer."""
    lease = replica.lease_view(info)
    times = LeaseTimes(renewal_interval_s=lease.renewal_interval_ms / 1000, duration_s=lease.duration_ms / 1000,
                       registration_ms=lease.first_seen_ms, last_renewal_ms=lease.last_renewal_ms,
                       service_up_ms=info.service_up_timestamp)
    return InstanceView(info, times, action)


def entry_view(replica: Replica, entry: Entry) -> InstanceView:
    """A visible entry's instance, as `instance_view`."""
    record = entry.record
    assert record is not None and record.info is not None, "only visible entries are indexed"
    return instance_view(replica, record.info)


@dataclass(frozen=True, slots=True)
class AppPiece:
    """An app's `application` element, also with a separator in front (what follows another app in a
    document: one piece to combine instead of two), and the per-status counts of its instances."""

    alone: Piece
    after_another: Piece
    counts: dict[Status, int]


@dataclass(slots=True)
class _Block:
    piece: Piece
    counts: dict[Status, int]
    rendered_ms: int


@dataclass(slots=True)
class _App:
    """One app's blocks: members by block, and per format the rendered blocks and their join."""

    blocks: int  # a power of two
    members: list[set[str]]
    rendered: dict[str, list[_Block | None]] = field(default_factory=dict)  # per format; None: to render
    joined: dict[str, AppPiece] = field(default_factory=dict)  # per format

    def block_of(self, instance_id: str) -> int:
        return hash(instance_id) & (self.blocks - 1)

    def invalidate(self, block: int) -> None:
        for rendered in self.rendered.values():
            rendered[block] = None
        self.joined.clear()




class Blocks(Generic[M]):
    """Apps' instances rendered in blocks, for one kind of document: the registry, or the delta window.

    `members(app)` is the source of truth (the core's index, the feed's window) as a mapping from instance id
    to whatever `view` turns into an `InstanceView`; `note` must hear of every key whose membership or content
    changed, and the blocks then agree with the source at every yield point of a build."""

    def __init__(self, members: Callable[[str], Mapping[str, M]], view: Callable[[M], InstanceView],
                 refresh_ms: int, block_size: int) -> None:
        self.members = members
        self.view = view
        self.refresh_ms = refresh_ms
        self.block_size = block_size
        self.rendered = 0  # blocks rendered so far (tests, metrics)
        self._apps: dict[str, _App] = {}

    def note(self, keys: Iterable[InstanceKey]) -> None:
        for app, instance_id in keys:
            state = self._apps.get(app)
            if state is None:
                continue
            present = self.members(app)
            if not present or len(present) > state.blocks * self.block_size:
                del self._apps[app]  # gone, or grown past its blocks: partitioned afresh when next read
                continue
            block = state.block_of(instance_id)
            if instance_id in present:
                state.members[block].add(instance_id)
            else:
                state.members[block].discard(instance_id)
            state.invalidate(block)

    def document(self, apps: Iterable[str], versions_delta: int, apps_hashcode: str | None, fmt: str,
                 now_ms: int) -> Generator[None, None, Piece]:
        """An applications document of these apps (sorted here); the hashcode of what it holds unless given."""
        counts: dict[Status, int] = {}
        pieces: list[Piece] = []
        for name in sorted(apps):
            joined = yield from self.app(name, fmt, now_ms)
            if joined is None:
                continue
            pieces.append(joined.after_another if pieces else joined.alone)
            for status, count in joined.counts.items():
                counts[status] = counts.get(status, 0) + count
        hashcode = render.hashcode(counts) if apps_hashcode is None else apps_hashcode
        return concat([stored(render.applications_open(versions_delta, hashcode, fmt).encode()), *pieces,
                       stored(render.applications_close(fmt).encode())])

    def app(self, name: str, fmt: str, now_ms: int) -> Generator[None, None, AppPiece | None]:
        """One app's `application` element, re-rendering its dirty and stale blocks (a yield after each)."""
        if not self.members(name):
            self._apps.pop(name, None)
            return None
        state = self._apps.get(name) or self._partition(name)
        rendered = state.rendered.setdefault(fmt, [None] * state.blocks)
        for block, done in enumerate(rendered):
            if done is None and state.members[block]:
                rendered[block] = self._render(state, block, name, fmt, now_ms)
                state.joined.pop(fmt, None)
                yield
        joined = state.joined.get(fmt)
        if joined is None:
            joined = state.joined[fmt] = self._join(state, rendered, name, fmt, now_ms)
            yield  # after a refresh every app joins anew: 500 joins in one step held the loop for 100 ms
        return joined

    def refresh(self, now_ms: int) -> Generator[None, None, bool]:
        """Re-render every rendered block older than half the refresh bound (renewals moved its lease times);
        True if any was. Reads never wait for this: the node runs it in the background every quarter of the
        bound, so no block shown is older than the bound."""
        stale_before = now_ms - self.refresh_ms // 2
        refreshed = False
        for name, state in list(self._apps.items()):
            for fmt, rendered in state.rendered.items():
                for block, done in enumerate(rendered):
                    if done is not None and done.rendered_ms <= stale_before and self._apps.get(name) is state:
                        rendered[block] = self._render(state, block, name, fmt, now_ms)
                        state.joined.pop(fmt, None)
                        refreshed = True
                        yield
        return refreshed

    def _join(self, state: _App, rendered: list[_Block | None], name: str, fmt: str, now_ms: int) -> AppPiece:
        sep = stored(render.separator(fmt).encode())
        parts = [stored(render.application_open(name, fmt).encode())]
        counts: dict[Status, int] = {}
        for block, done in enumerate(rendered):
            if done is None and state.members[block]:  # dirtied while we yielded: render it now, no yield
                done = rendered[block] = self._render(state, block, name, fmt, now_ms)
            if done is None:
                continue
            parts.extend((sep, done.piece) if len(parts) > 1 else (done.piece,))
            for status, count in done.counts.items():
                counts[status] = counts.get(status, 0) + count
        parts.append(stored(render.application_close(fmt).encode()))
        alone = concat(parts)
        return AppPiece(alone, concat([sep, alone]) if sep.length else alone, counts)

    def _partition(self, name: str) -> _App:
        present = self.members(name)
        blocks = 1
        while blocks * self.block_size < len(present):
            blocks *= 2
        state = _App(blocks, [set() for _ in range(blocks)])
        for instance_id in present:
            state.members[state.block_of(instance_id)].add(instance_id)
        self._apps[name] = state
        return state

    def _render(self, state: _App, block: int, name: str, fmt: str, now_ms: int) -> _Block | None:
        present = self.members(name)
        members = [m for m in (present.get(i) for i in sorted(state.members[block])) if m is not None]
        if not members:
            return None
        views = [self.view(member) for member in members]
        counts: dict[Status, int] = {}
        for view in views:
            counts[view.info.status] = counts.get(view.info.status, 0) + 1
        self.rendered += 1
        return _Block(compress(render.instances_text(views, fmt).encode("utf-8")), counts, now_ms)


@dataclass(frozen=True, slots=True)
class Built:
    """A built document: gzip bytes ready to send, and its piece for plain-text answers."""

    gzip: bytes
    piece: Piece
    version: Hashable  # what it was built from
    built_ms: int  # when its build started: it shows the state as of then or later


class DocumentCache:
    """The registry (`GET apps`), apps (`GET apps/{APP}`) and the delta (`GET apps/delta`)."""

    def __init__(self, replica: Replica, feed: ChangeFeed, refresh_ms: int, max_age_ms: int,
                 block_size: int = BLOCK_SIZE) -> None:
        self.replica = replica
        self.index = replica.index
        self.feed = feed
        self.max_age_ms = max_age_ms
        self.refresh_ms = refresh_ms
        self.registry_blocks: Blocks[Entry] = Blocks(self.index.app, partial(entry_view, replica),
                                                     refresh_ms, block_size)
        self.delta_blocks: Blocks[FeedEvent] = Blocks(lambda app: feed.window.get(app, {}), self._event_view,
                                                      refresh_ms, block_size)
        self._built: dict[tuple[str, str], Built] = {}

    def note(self, changes: Iterable[Change], pruned: Iterable[FeedEvent] = ()) -> None:
        """The core's applied changes (they touch the registry and the delta) and what left the delta window."""
        keys = [change.key for change in changes]
        self.registry_blocks.note(keys)
        self.delta_blocks.note(keys)
        self.delta_blocks.note(event.key for event in pruned)

    # ----- the registry -----------------------------------------------------------------------------------

    def current_registry(self, fmt: str, now_ms: int) -> Built | None:
        """The built registry document if it may still be served: unchanged since, or within the max age."""
        built = self._built.get(("registry", fmt))
        if built is None:
            return None
        age = now_ms - built.built_ms
        return built if age < self.max_age_ms or built.version == self.index.version else None

    def build_registry(self, fmt: str, now_ms: int) -> Generator[None, None, Built]:
        version = self.index.version
        piece = yield from self.registry_blocks.document(self.index.by_app, 1, None, fmt, now_ms)
        built = self._built[("registry", fmt)] = Built(gzip_member(piece), piece, version, now_ms)
        return built

    def refresh(self, now_ms: int) -> Generator[None, None, None]:
        """Bring lease times up to date (`Blocks.refresh`), and rebuild the built documents that showed them."""
        registry = yield from self.registry_blocks.refresh(now_ms)
        delta = yield from self.delta_blocks.refresh(now_ms)
        for kind, fmt in list(self._built):
            if kind == "registry" and registry:
                yield from self.build_registry(fmt, now_ms)
            elif kind == "delta" and delta:
                yield from self.build_delta(fmt, now_ms)

    def application(self, name: str, fmt: str, now_ms: int) -> Steps:
        """`GET apps/{APP}` as a piece, or None when the app has no visible instance."""
        joined = yield from self.registry_blocks.app(name, fmt, now_ms)
        if joined is None:
            return None
        if fmt == "json":
            return concat([stored(b'{"application":'), joined.alone, stored(b"}")])
        return joined.alone

    # ----- the delta ----------------------------------------------------------------------------------------

    def delta_version(self) -> Hashable:
        return (self.feed.delta_version, render.hashcode(self.index.status_counts))

    def current_delta(self, fmt: str) -> Built | None:
        """The delta is never served old: it is what clients poll for freshness; rebuilding costs what changed."""
        built = self._built.get(("delta", fmt))
        return built if built is not None and built.version == self.delta_version() else None

    def build_delta(self, fmt: str, now_ms: int) -> Generator[None, None, Built]:
        version = self.delta_version()
        delta_version, hashcode = self.feed.delta_version, render.hashcode(self.index.status_counts)
        piece = yield from self.delta_blocks.document(list(self.feed.window), delta_version, hashcode, fmt, now_ms)
        built = self._built[("delta", fmt)] = Built(gzip_member(piece), piece, version, now_ms)
        return built

    def _event_view(self, event: FeedEvent) -> InstanceView:
        """A delta entry: the instance as the change left it (a DELETED one: its last copy), with its lease."""
        return instance_view(self.replica, event.info, DELTA_ACTIONS[event.action])


@dataclass(slots=True)
class SmallDocument:
    """A rendered document small enough to keep plain (the delta, VIPs), gzipped on first demand."""

    plain: bytes
    _gzip: bytes | None = None

    def gzipped(self) -> bytes:
        if self._gzip is None:
            self._gzip = gzip.compress(self.plain, GZIP_LEVEL, mtime=0)
        return self._gzip


@dataclass(slots=True)
class SmallDocuments:
    """Rendered documents by a key that names everything they depend on (so nothing here expires by time),
    least recently used dropped first beyond `max_bytes`."""

    max_bytes: int = 32 << 20
    _docs: OrderedDict[Hashable, SmallDocument] = field(default_factory=OrderedDict)
    _bytes: int = 0

    def get(self, key: Hashable) -> SmallDocument | None:
        doc = self._docs.get(key)
        if doc is not None:
            self._docs.move_to_end(key)
        return doc

    def put(self, key: Hashable, plain: bytes) -> SmallDocument:
        doc = self._docs[key] = SmallDocument(plain)
        self._bytes += 2 * len(plain)  # room for its gzip copy, which is never larger than about the text
        while self._bytes > self.max_bytes and len(self._docs) > 1:
            _, dropped = self._docs.popitem(last=False)
            self._bytes -= 2 * len(dropped.plain)
        return doc
