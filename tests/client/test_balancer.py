from apreg.client import AppView, Instance, RandomChoice, RoundRobin, ZonePreferring


def inst(iid: str, zone: str | None = None, status: str = "UP") -> Instance:
    return Instance("ORDERS", iid, "h", "127.0.0.1", 80, status, {"zone": zone} if zone else {})


def view(*instances: Instance) -> AppView:
    return AppView.build("ORDERS", {i.instance_id: i for i in instances})


def test_view_keeps_only_up_instances_sorted_by_id() -> None:
    v = view(inst("c"), inst("a"), inst("b", status="DOWN"))
    assert [i.instance_id for i in v.up] == ["a", "c"]


def test_round_robin_cycles_through_every_instance_in_turn() -> None:
    v = view(inst("a"), inst("b"), inst("c"))
    rr = RoundRobin()
    assert [rr.choose(v).instance_id for _ in range(7)] == ["a", "b", "c", "a", "b", "c", "a"]  # type: ignore[union-attr]


def test_round_robin_keeps_one_cursor_per_app() -> None:
    rr = RoundRobin()
    orders = view(inst("a"), inst("b"))
    cart = AppView.build("CART", {"x": Instance("CART", "x", "h", "i", 1, "UP"), "y": Instance("CART", "y", "h", "i", 1, "UP")})
    assert rr.choose(orders).instance_id == "a"  # type: ignore[union-attr]
    assert rr.choose(cart).instance_id == "x"  # type: ignore[union-attr]
    assert rr.choose(orders).instance_id == "b"  # type: ignore[union-attr]


def test_nothing_up_gives_none() -> None:
    v = view(inst("a", status="DOWN"))
    assert RoundRobin().choose(v) is None
    assert RandomChoice().choose(v) is None
    assert ZonePreferring("a").choose(v) is None


def test_random_uses_the_injected_source() -> None:
    v = view(inst("a"), inst("b"), inst("c"), inst("d"))
    values = iter([0.0, 0.26, 0.99])
    rc = RandomChoice(lambda: next(values))
    assert [rc.choose(v).instance_id for _ in range(3)] == ["a", "b", "d"]  # type: ignore[union-attr]


def test_zone_preference_stays_in_zone_while_it_has_instances() -> None:
    v = view(inst("a1", "a"), inst("b1", "b"), inst("a2", "a"), inst("n"))
    zp = ZonePreferring("a")
    assert {zp.choose(v).instance_id for _ in range(10)} == {"a1", "a2"}  # type: ignore[union-attr]


def test_zone_preference_falls_back_to_every_zone() -> None:
    v = view(inst("b1", "b"), inst("c1", "c"), inst("a1", "a", status="DOWN"))
    zp = ZonePreferring("a")
    assert {zp.choose(v).instance_id for _ in range(4)} == {"b1", "c1"}  # type: ignore[union-attr]
