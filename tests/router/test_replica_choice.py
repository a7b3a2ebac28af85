"""Which replica a request goes to: adapter affinity by rendezvous hashing, bounded by load."""

from __future__ import annotations

from collections import Counter

from router.engine.replicas import choose_replica, rendezvous_order

URLS = [f"http://engine-{i}:8000" for i in range(4)]
KEYS = [f"adapter-{i}@{i}" for i in range(400)]


def test_every_key_has_one_home_and_keys_spread_over_replicas() -> None:
    idle = dict.fromkeys(URLS, 0)
    homes = Counter(choose_replica(key, idle, load_factor=1.25, min_load=4) for key in KEYS)
    assert set(homes) == set(URLS)
    assert all(60 <= count <= 140 for count in homes.values()), homes  # 100 each on average
    # Idle replicas: the home is the first of the key's rendezvous order.
    first = {key: rendezvous_order(key, URLS)[0] for key in KEYS}
    assert all(choose_replica(k, idle, load_factor=1.25, min_load=4) == first[k] for k in KEYS)


def test_adding_a_replica_moves_only_the_keys_it_takes() -> None:
    before = {key: rendezvous_order(key, URLS)[0] for key in KEYS}
    after = {key: rendezvous_order(key, [*URLS, "http://engine-4:8000"])[0] for key in KEYS}
    moved = [key for key in KEYS if before[key] != after[key]]
    assert all(after[key] == "http://engine-4:8000" for key in moved)
    assert 40 <= len(moved) <= 120  # a fifth of 400 on average


def test_a_busy_home_passes_requests_to_the_next_replica_in_the_keys_order() -> None:
    key = KEYS[0]
    home, second = rendezvous_order(key, URLS)[:2]
    loads = dict.fromkeys(URLS, 0)
    loads[home] = 3
    # Below the floor: the home keeps the request however uneven the load.
    assert choose_replica(key, loads, load_factor=1.25, min_load=4) == home
    loads[home] = 10
    assert choose_replica(key, loads, load_factor=1.25, min_load=4) == second
    # Everyone busy: the bound grows with the mean, and the home takes it again.
    loads = dict.fromkeys(URLS, 10)
    assert choose_replica(key, loads, load_factor=1.25, min_load=4) == home


def test_requests_without_an_adapter_go_to_the_least_loaded_replica() -> None:
    loads = {url: 5 - i for i, url in enumerate(URLS)}
    assert choose_replica(None, loads, load_factor=1.25, min_load=4) == URLS[-1]
