"""Change log and digest anti-entropy: constant cost in sync, cost of the difference out of sync, paging."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from apreg.core.changelog import ChangeLog
from apreg.core.config import CoreConfig
from apreg.core.entry import Entry
from apreg.core.instance import InstanceKey
from apreg.core.messages import Digest, DigestReply, Push
from apreg.core.replica import Replica

from .strategies import flush, info

T0 = 5_000_000


def key(i: int) -> InstanceKey:
    return InstanceKey("SVC", f"i-{i}")


def test_log_holds_each_key_once_and_pages_whole_keys() -> None:
    log = ChangeLog()
    entries = [Entry(key=key(i)) for i in range(5)]
    for entry in entries:
        log.note(entry, record=True, renewal=False)  # sequences 1..5
    log.note(entries[0], record=False, renewal=True)  # 6: i-0 renews; its record stays at 1
    log.note(entries[1], record=True, renewal=False)  # 7: i-1 changes again
    assert log.head == 7 and (entries[0].record_seq, entries[0].renewal_seq, entries[1].record_seq) == (1, 6, 7)
    assert log.since(7, 100).record_keys == [] and not log.since(7, 100).more
    page = log.since(5, 100)
    assert page.record_keys == [key(1)] and page.renewal_keys == [key(0)] and page.upto == 7 and not page.more
    # Pages take whole keys in order of their earliest change; `upto` stops before the first key left out.
    first = log.since(0, 3)
    assert first.record_keys == [key(0), key(2)] and first.renewal_keys == [key(0)] and first.more
    assert first.upto == 3
    alone = log.since(0, 1)  # a key whose changes alone exceed the limit still goes whole
    assert alone.record_keys == alone.renewal_keys == [key(0)] and alone.upto == 2 and alone.more
    second = log.since(first.upto, 2)
    assert second.record_keys == [key(3), key(4)] and second.renewal_keys == [] and second.upto == 5
    third = log.since(second.upto, 2)
    assert third.record_keys == [key(1)] and third.renewal_keys == [key(0)] and not third.more and third.upto == 7
    log.forget(entries[1])
    assert log.since(5, 100).record_keys == [] and log.since(5, 100).renewal_keys == [key(0)]


@given(st.lists(st.tuples(st.integers(0, 5), st.sampled_from(["record", "renewal", "both", "forget"])), max_size=40),
       st.integers(1, 4), st.integers(0, 3), st.data())
def test_paging_from_any_position_delivers_every_later_change(ops: list[tuple[int, str]], limit: int,
                                                              compact_after: int, data: st.DataObject) -> None:
    log, entries = ChangeLog(compact_after=compact_after), [Entry(key=key(i)) for i in range(6)]
    for i, op in ops:
        if op == "forget":
            log.forget(entries[i])
        else:
            log.note(entries[i], record=op != "renewal", renewal=op != "record")
    since = data.draw(st.integers(0, log.head))
    got_records: dict[InstanceKey, int] = {}
    got_renewals: dict[InstanceKey, int] = {}
    position, more = since, True
    while more:
        page = log.since(position, limit)
        assert page.upto > position or page.upto == log.head
        for entry in entries:  # every change in (position, upto] is in this very page
            if position < entry.record_seq <= page.upto:
                assert (entry.record_seq, entry) in page.records
            if position < entry.renewal_seq <= page.upto:
                assert (entry.renewal_seq, entry) in page.renewals
        got_records.update((e.key, seq) for seq, e in page.records)
        got_renewals.update((e.key, seq) for seq, e in page.renewals)
        position, more = page.upto, page.more
    assert position == log.head
    assert got_records == {e.key: e.record_seq for e in entries if e.record_seq > since}
    assert got_renewals == {e.key: e.renewal_seq for e in entries if e.renewal_seq > since}


def pair(config: CoreConfig | None = None) -> tuple[Replica, Replica]:
    config = config or CoreConfig()
    return Replica("a", "1", config, ("b",)), Replica("b", "1", config, ("a",))


def pull(b: Replica, a: Replica, now: int) -> list[DigestReply]:
    """b pulls from a until a says there is no more; returns the replies (the pages)."""
    replies = []
    while True:
        reply = a.receive(b.digest_for("a"), now)
        assert isinstance(reply, DigestReply)
        replies.append(reply)
        b.receive(reply, now, peer="a")
        b.take_effects().messages
        if not reply.more:
            return replies


def test_in_sync_exchange_returns_an_empty_page() -> None:
    a, b = pair()
    for i in range(50):
        a.register(info(f"i-{i}"), T0)
    pull(b, a, T0)
    assert {k: r.stamp for k, r in b.records.items()} == {k: r.stamp for k, r in a.records.items()}
    [reply] = pull(b, a, T0 + 1)
    assert reply.delta.records == () and reply.delta.renewals == () and not reply.more
    assert b.synced


def test_out_of_sync_page_is_the_difference() -> None:
    a, b = pair()
    for i in range(50):
        a.register(info(f"i-{i}"), T0)
    pull(b, a, T0)
    for i in range(3):
        a.update_metadata(key(i), {"v": "2"}, T0 + 10)
    for i in range(10, 12):
        a.renew(key(i), T0 + 10)
    [reply] = pull(b, a, T0 + 20)
    assert sorted(r.key for r in reply.delta.records) == [key(0), key(1), key(2)]
    assert sorted(u.key for u in reply.delta.renewals) == [key(10), key(11)]
    assert all(b.records[key(i)].info.metadata == {"v": "2"} for i in range(3))  # type: ignore[union-attr]
    assert b.entries[key(10)].renewed == a.entries[key(10)].renewed


def test_paging_with_more() -> None:
    a, b = pair(CoreConfig(max_page_items=10))
    for i in range(25):
        a.register(info(f"i-{i}"), T0)  # 25 records + 25 renewals = 50 changes
    replies = pull(b, a, T0)
    assert [len(r.delta.records) + len(r.delta.renewals) for r in replies] == [10, 10, 10, 10, 10]
    assert [r.more for r in replies] == [True, True, True, True, False]
    assert len(b.records) == 25 and b.watermarks[a.replica_id] == a.log.head


def test_requester_pushes_what_the_responder_lacks() -> None:
    """The reply says how far the responder holds the requester's log; the requester pushes the rest."""
    a, b = pair()
    a.register(info("i-a"), T0)
    b.register(info("i-b"), T0)
    reply = a.receive(b.digest_for("a"), T0)
    b.receive(reply, T0, peer="a")
    [out] = b.take_effects().messages
    assert out.peer == "a"
    a.receive(out.message, T0)
    assert set(a.records) == set(b.records) == {InstanceKey("SVC", "i-a"), InstanceKey("SVC", "i-b")}


def test_digest_for_an_unknown_incarnation_restarts_from_zero() -> None:
    """A peer that restarted (new replica id) is answered with everything, not from a stale watermark."""
    a, b = pair()
    for i in range(5):
        a.register(info(f"i-{i}"), T0)
    pull(b, a, T0)
    a2 = Replica("a", "2", a.config, ("b",))  # a restarted empty
    for i in range(5, 7):
        a2.register(info(f"i-{i}"), T0 + 1)
    reply = a2.receive(b.digest_for("a"), T0 + 2)  # b still expects the old incarnation
    assert isinstance(reply, DigestReply) and reply.delta.base == 0 and len(reply.delta.records) == 2
    reply = b.receive(a2.digest_for("b"), T0 + 2)
    assert isinstance(reply, DigestReply) and len(reply.delta.records) == 5  # a2 pulls the full state


def test_a_pull_that_asks_ahead_gets_every_page_once() -> None:
    """The shell asks for the next page before applying the current one, and says so; the core then asks for
    nothing more."""
    a, b = pair(CoreConfig(max_page_items=10))
    for i in range(25):
        a.register(info(f"i-{i}"), T0)
    a.renew(key(3), T0 + 1)  # i-3's record now sits far before its renewal
    digest = b.digest_for("a")
    reply = a.receive(digest, T0 + 2)
    pages = []
    while isinstance(reply, DigestReply):
        pages.append(reply)
        ahead = a.receive(digest.after(reply), T0 + 2) if reply.more else None
        if reply.more:
            b.expect_page_after("a", reply)
        b.receive(reply, T0 + 2, peer="a")
        assert not [o for o in b.take_effects().messages if isinstance(o.message, Digest)]
        reply = ahead
    assert [p.more for p in pages] == [True] * (len(pages) - 1) + [False] and len(pages) >= 5 and b.synced
    assert {k: r.stamp for k, r in b.records.items()} == {k: r.stamp for k, r in a.records.items()}
    assert b.entries[key(3)].renewed == a.entries[key(3)].renewed
    assert b.watermarks[a.replica_id] == a.log.head
    reply = a.receive(b.digest_for("a"), T0 + 3)  # a digest of its own resumes from the watermark
    assert isinstance(reply, DigestReply) and reply.delta.records == () and not reply.more


@given(st.lists(st.tuples(st.integers(0, 5), st.sampled_from(["", "a", "b"]), st.booleans(), st.booleans()),
                max_size=40))
def test_newest_not_from_bounds_the_newest_change_of_any_other_origin(ops: list[tuple[int, str, bool, bool]]) -> None:
    log, entries = ChangeLog(compact_after=1), [Entry(key=key(i)) for i in range(6)]
    for i, origin, record, renewal in ops:
        entry = entries[i]
        if record:
            entry.record_from = origin
        if renewal or not record:
            entry.renewal_from = origin
        log.note(entry, record=record, renewal=renewal or not record)
    for origin in ("", "a", "b", "c"):
        page = log.since(0, 1000)
        others = [seq for seq, e in page.records if e.record_from != origin]
        others += [seq for seq, e in page.renewals if e.renewal_from != origin]
        assert log.newest_not_from(origin) >= max(others, default=0)
        if all(o == origin for _, o, _, _ in ops):
            assert log.newest_not_from(origin) == 0


def test_a_node_that_pulled_a_registry_sends_none_of_it_back_and_still_pushes_its_own_writes() -> None:
    """After pulling more than a push holds, b's log is all a's: its eager pushes to a carry nothing, the repair
    push answering each page credits a with b's whole log, a digest from a is answered with one empty page, and
    b's next own write goes to a at once."""
    a, b = pair(CoreConfig(max_page_items=50, max_batch_items=40))
    for i in range(120):
        a.register(info(f"i-{i}"), T0)
    digest = b.digest_for("a")
    reply = a.receive(digest, T0)
    while isinstance(reply, DigestReply):
        if reply.more:
            b.expect_page_after("a", reply)
        b.receive(reply, T0, peer="a")
        b.tick(T0 + 100)  # whatever pushes are due
        sent = b.take_effects().messages
        assert not [o for o in sent if isinstance(o.message, Push) and (o.message.delta.records or
                                                                       o.message.delta.renewals)]
        for out in sent:
            a.receive(out.message, T0)  # repair pushes: ranges without changes
        reply = a.next_page(digest, reply, T0) if reply.more else None
    assert len(b.records) == 120 and a.watermarks[b.replica_id] == b.log.head
    whole = b.receive(Digest(a.replica_id, a.log.head, b.replica_id, 0), T0)  # a asks for all of b's log
    assert isinstance(whole, DigestReply) and not whole.more and whole.delta.upto == b.log.head
    assert whole.delta.records == whole.delta.renewals == ()  # one page: all of it is a's own
    b.register(info("i-b"), T0 + 1)
    pushes = flush(b, T0 + 200)
    assert [r.key for o in pushes for r in o.message.delta.records] == [InstanceKey("SVC", "i-b")]  # type: ignore
    for out in pushes:
        a.receive(out.message, T0 + 1)
    assert InstanceKey("SVC", "i-b") in a.records and a.watermarks[b.replica_id] == b.log.head


def test_a_streamed_pull_brings_every_page_unasked() -> None:
    """The responder pages on from its own last page; the requester, told each next page is coming, asks for
    nothing and ends in sync."""
    a, b = pair(CoreConfig(max_page_items=10))
    for i in range(25):
        a.register(info(f"i-{i}"), T0)
    digest = b.digest_for("a")
    reply = a.receive(digest, T0)
    pages = 0
    while isinstance(reply, DigestReply):
        pages += 1
        if reply.more:
            b.expect_page_after("a", reply)
        b.receive(reply, T0, peer="a")
        assert not [o for o in b.take_effects().messages if isinstance(o.message, Digest)]
        reply = a.next_page(digest, reply, T0) if reply.more else None
    assert pages == 5 and b.synced and b.watermarks[a.replica_id] == a.log.head
    assert {k: r.stamp for k, r in b.records.items()} == {k: r.stamp for k, r in a.records.items()}
