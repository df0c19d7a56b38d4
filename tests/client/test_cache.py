from apreg.client import Instance
from apreg.client._cache import RegistryCache
from apreg.client._codec import Change


def inst(app: str, iid: str, status: str = "UP") -> Instance:
    return Instance(app, iid, "h", "127.0.0.1", 80, status)


def ids(cache: RegistryCache, app: str) -> list[str]:
    return [i.instance_id for i in cache.view(app).up]


def test_replace_builds_views_and_hash() -> None:
    cache = RegistryCache()
    cache.replace([inst("A", "a1"), inst("A", "a2", "DOWN"), inst("B", "b1")])
    assert ids(cache, "A") == ["a1"] and ids(cache, "B") == ["b1"]
    assert cache.hashcode() == "DOWN_1_UP_2_"
    assert cache.apps() == ["A", "B"]
    cache.replace([inst("B", "b2")])
    assert ids(cache, "A") == [] and ids(cache, "B") == ["b2"]


def test_watch_events_upsert_and_remove() -> None:
    cache = RegistryCache()
    cache.apply_change(Change(1, "A", "a1", "register", inst("A", "a1")))
    cache.apply_change(Change(2, "A", "a2", "register", inst("A", "a2")))
    assert ids(cache, "A") == ["a1", "a2"]
    cache.apply_change(Change(3, "A", "a1", "status", inst("A", "a1", "OUT_OF_SERVICE")))
    assert ids(cache, "A") == ["a2"]
    cache.apply_change(Change(4, "A", "a2", "evict", None))
    cache.apply_change(Change(5, "A", "zz", "cancel", None))  # unknown: harmless
    cache.apply_change(Change(6, "A", "a9", "something-new", inst("A", "a9")))  # unknown action: ignored
    assert ids(cache, "A") == []
    assert [i.instance_id for i in cache.all_instances("A")] == ["a1"]


def test_delta_applies_added_modified_deleted() -> None:
    cache = RegistryCache()
    cache.replace([inst("A", "a1"), inst("A", "a2")])
    cache.apply_delta([("ADDED", inst("B", "b1")), ("MODIFIED", inst("A", "a1", "DOWN")), ("DELETED", inst("A", "a2"))])
    assert ids(cache, "A") == [] and ids(cache, "B") == ["b1"]
    assert cache.hashcode() == "DOWN_1_UP_1_"


def test_listeners_hear_only_real_changes_and_cannot_break_the_cache() -> None:
    cache = RegistryCache()
    heard: list[tuple[str, list[str]]] = []

    def broken(app: str, up: tuple[Instance, ...]) -> None:
        raise RuntimeError("boom")

    cache.add_listener(broken)
    cache.add_listener(lambda app, up: heard.append((app, [i.instance_id for i in up])))
    cache.apply_change(Change(1, "A", "a1", "register", inst("A", "a1")))
    cache.apply_change(Change(2, "A", "a1", "modify", inst("A", "a1")))  # same UP list: silent
    cache.apply_change(Change(3, "A", "a1", "cancel", None))
    assert heard == [("A", ["a1"]), ("A", [])]
