"""Chaos deliveries: duplicates, reordering and delays from the sandbox, into a real receiver."""

from __future__ import annotations

import dataclasses
import math
import threading

import pandas as pd
import pytest

import impilo_nb as nb
from impilo_nb._time import poll_until
from impilo_nb.sandbox import Chaos
from impilo_nb.sandbox.chaos import Planner
from impilo_nb.sandbox.delivery import Dispatcher
from impilo_nb.sandbox.store import SandboxStore
from tests.hostile import HostileServer, raw

#: Seconds before a wait gives up. Only stops a hung test: no outcome depends on speed.
HANG_GUARD = 60.0

EVENT = "reading.weight"


@pytest.fixture
def log(tmp_path):
    return nb.EventLog(tmp_path / "events.db")


def chaotic_run(log, chaos, events):
    """Emit ``events`` events from a sandbox with ``chaos`` into a receiver on ``log``; the ids
    emitted (in order) and the sandbox's delivery log once nothing is pending."""
    with nb.Sandbox(chaos=chaos, time_scale=1000) as sandbox, nb.WebhookReceiver(log) as receiver:
        api = nb.ImpiloClient(base_url=sandbox.url, api_key=sandbox.api_key, timeout=HANG_GUARD)
        api.webhooks.create(type=EVENT, url=receiver.url)
        emitted = [sandbox.emit(EVENT, {"id": n, "weight": 60 + n / 10}) for n in range(events)]
        assert sandbox.wait_for_deliveries(timeout=HANG_GUARD)
        deliveries = api.webhooks.logs()
    return emitted, deliveries


def test_duplicates_reordering_and_every_event_once_in_the_log(log):
    chaos = Chaos(duplicate=0.2, reorder=True, delay_s=(0, 0.05), seed=3)
    emitted, deliveries = chaotic_run(log, chaos, 200)
    frame = log.frame()
    assert sorted(frame["event_id"]) == emitted  # every event arrived, and is one row
    twice = frame[frame["delivery_count"] > 1]
    assert 10 <= len(twice) <= 80  # about one in five (0.2 of 200 = 40)
    assert set(frame["delivery_count"]) <= {1, 2}
    planner = Planner(chaos)
    expected = [planner.plan().duplicate_after_s is not None for _ in emitted]
    assert sorted(twice["event_id"]) == [e for e, dup in zip(emitted, expected, strict=True) if dup]  # as the seed says
    assert frame["event_id"].tolist() != emitted  # arrival order is not event order
    # The sandbox's own log tells the truth: one attempt per send the receiver counted.
    sends = deliveries.set_index("eventId")["attempts"].map(len)
    assert (sends.sort_index() == frame.set_index("event_id")["delivery_count"].sort_index()).all()
    assert set(deliveries["status"]) == {"delivered"} and set(deliveries["lastResponseStatus"]) == {200}


@pytest.mark.parametrize("reorder", [True, False])
def test_reorder_without_delay_still_reorders(tmp_path, log, reorder):
    # One worker: without chaos the events would surely arrive in order, so any disorder is chaos's.
    store = SandboxStore(str(tmp_path / "sandbox.db"))
    dispatcher = Dispatcher(store, workers=1, chaos=Chaos(duplicate=0, reorder=reorder, delay_s=(0, 0), seed=1))
    with nb.WebhookReceiver(log) as receiver:
        store.create_webhook(EVENT, receiver.url)
        dispatcher.start()
        try:
            emitted = [dispatcher.publish(EVENT, {"id": n}) for n in range(50)]
            assert poll_until(lambda: dispatcher.pending_now() == 0, timeout=HANG_GUARD)
        finally:
            dispatcher.stop()
            store.close()
    arrived = log.frame()["event_id"].tolist()
    assert sorted(arrived) == emitted and set(log.frame()["delivery_count"]) == {1}
    assert (arrived != emitted) is reorder


def test_without_reorder_or_duplicates_chaos_only_delays(log):
    emitted, deliveries = chaotic_run(log, Chaos(duplicate=0, reorder=False, delay_s=(0.3, 0.3)), 5)
    assert sorted(log.frame()["event_id"]) == emitted and set(log.frame()["delivery_count"]) == {1}
    for _, entry in deliveries.iterrows():
        waited = pd.Timestamp(entry["attempts"][0]["timestamp"]) - pd.Timestamp(entry["createTimestamp"])
        assert waited.total_seconds() >= 0.3 * 0.99  # a lower bound: the delay happened


def test_a_duplicate_comes_after_the_delay_and_its_failure_is_logged_not_retried():
    answers = iter([200, 500])
    chaos = Chaos(duplicate=1, reorder=False, delay_s=(0.2, 0.2))
    with HostileServer(lambda seen: raw(next(answers, 200), {})) as hook, nb.Sandbox(chaos=chaos, time_scale=0.0001) as sandbox:
        api = nb.ImpiloClient(base_url=sandbox.url, api_key=sandbox.api_key, timeout=HANG_GUARD)
        api.webhooks.create(type=EVENT, url=hook.url + "/hook")
        sandbox.emit(EVENT, {"id": 1})
        assert sandbox.wait_for_deliveries(timeout=HANG_GUARD)
        entry = api.webhooks.logs().iloc[0]
        assert len(hook.seen) == 2 and hook.seen[0].body == hook.seen[1].body  # the same bytes, so the same id
    assert entry["status"] == "delivered"  # a failed duplicate is no failed delivery: nothing to retry
    assert [(a["responseStatus"], a["error"]) for a in entry["attempts"]] == [(200, None), (500, "HTTP 500")]
    first, second = (pd.Timestamp(a["timestamp"]) for a in entry["attempts"])
    assert (second - first).total_seconds() >= 0.2 * 0.99


def test_waiting_for_deliveries_counts_what_chaos_holds_back(log):
    with nb.Sandbox(chaos=Chaos(duplicate=0, reorder=False, delay_s=(30, 30))) as sandbox, nb.WebhookReceiver(log) as receiver:
        api = nb.ImpiloClient(base_url=sandbox.url, api_key=sandbox.api_key, timeout=HANG_GUARD)
        api.webhooks.create(type=EVENT, url=receiver.url)
        for n in range(3):
            sandbox.emit(EVENT, {"id": n})
        assert sandbox.dispatcher.pending_now() == 3
        assert sandbox.wait_for_deliveries(timeout=0.05) is False  # delayed, not done
        assert sandbox.retry_now() == 0  # a chaos delay is no retry to bring forward
        assert len(log) == 0


def test_a_duplicate_waits_for_the_delivery_to_succeed():
    answers = iter([503])
    chaos = Chaos(duplicate=1, reorder=False, delay_s=(0, 0))
    with HostileServer(lambda seen: raw(next(answers, 200), {})) as hook, nb.Sandbox(chaos=chaos, time_scale=1000) as sandbox:
        api = nb.ImpiloClient(base_url=sandbox.url, api_key=sandbox.api_key, timeout=HANG_GUARD)
        api.webhooks.create(type=EVENT, url=hook.url + "/hook")
        sandbox.emit(EVENT, {"id": 1})
        assert sandbox.wait_for_deliveries(timeout=HANG_GUARD)  # the retry is 15000 minutes away: not pending
        assert len(hook.seen) == 1
        assert sandbox.retry_now() == 1
        assert sandbox.wait_for_deliveries(timeout=HANG_GUARD)
        entry = api.webhooks.logs().iloc[0]
    assert [a["responseStatus"] for a in entry["attempts"]] == [503, 200, 200] and len(hook.seen) == 3


def test_the_same_seed_draws_the_same_plans():
    chaos = Chaos(duplicate=0.3, reorder=True, delay_s=(0, 2), seed=42)
    first, again = Planner(chaos), Planner(chaos)
    plans = [first.plan() for _ in range(50)]
    assert plans == [again.plan() for _ in range(50)]
    other = Planner(dataclasses.replace(chaos, seed=43))
    assert plans != [other.plan() for _ in range(50)]
    assert all(0 <= plan.delay_s <= 2 for plan in plans) and any(plan.hold for plan in plans)
    unordered = Planner(dataclasses.replace(chaos, reorder=False))
    same_but_held = [dataclasses.replace(unordered.plan(), hold=plan.hold) for plan in plans]
    assert same_but_held == plans  # turning reorder off changes only the holds


def test_planning_is_safe_from_many_threads():
    planner = Planner(Chaos(seed=9))
    plans: list = []
    threads = [threading.Thread(target=lambda: plans.extend(planner.plan() for _ in range(100))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    reference = Planner(Chaos(seed=9))
    assert sorted(plans, key=repr) == sorted((reference.plan() for _ in range(400)), key=repr)


def test_chaos_is_a_readable_frozen_value():
    chaos = Chaos()
    assert repr(chaos) == "Chaos(duplicate=0.2, reorder=True, delay_s=(0.0, 2.0), seed=1)"
    assert Chaos(delay_s=[0, 1]).delay_s == (0.0, 1.0) and Chaos(duplicate=1).duplicate == 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        chaos.duplicate = 0.5  # type: ignore[misc]
    assert Chaos(seed=2) == Chaos(seed=2) != Chaos(seed=3)


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"duplicate": 1.5}, "between 0 and 1"),
        ({"duplicate": -0.1}, "between 0 and 1"),
        ({"duplicate": math.nan}, "between 0 and 1"),
        ({"duplicate": True}, "between 0 and 1"),
        ({"duplicate": "0.2"}, "between 0 and 1"),
        ({"reorder": "yes"}, "True or False"),
        ({"delay_s": (2, 1)}, "0 <= low <= high"),
        ({"delay_s": (-1, 0)}, "0 <= low <= high"),
        ({"delay_s": (0,)}, "a pair (low, high)"),
        ({"delay_s": "0,2"}, "a pair (low, high)"),
        ({"delay_s": 2}, "a pair (low, high)"),
        ({"delay_s": (0, math.inf)}, "two numbers"),
        ({"delay_s": (0, None)}, "two numbers"),
        ({"seed": 1.5}, "whole number"),
        ({"seed": None}, "whole number"),
    ],
)
def test_unusable_settings_say_what_and_how(settings, says):
    with pytest.raises(nb.ConfigurationError) as caught:
        Chaos(**settings)
    name = next(iter(settings))
    assert f"Chaos({name}=...)" in str(caught.value) and says in str(caught.value)


def test_the_sandbox_takes_only_a_chaos_and_shows_it():
    with pytest.raises(nb.ConfigurationError, match=r"chaos must be a Chaos\(\.\.\.\)"):
        nb.Sandbox(chaos={"duplicate": 0.2})  # type: ignore[arg-type]
    with nb.Sandbox(chaos=Chaos(seed=7)) as sandbox, nb.Sandbox() as plain:
        assert "chaos=Chaos(duplicate=0.2, reorder=True, delay_s=(0.0, 2.0), seed=7)" in repr(sandbox)
        assert "chaos" not in repr(plain)


def test_a_due_time_beyond_what_the_os_can_wait_for_stops_no_worker(log):
    """A retry 15 min x 1e9 away is further off than a thread can sleep (as is a chaos delay of
    1e10 s): the workers must keep delivering everything else."""
    with HostileServer(lambda seen: raw(200)) as gone:
        dead = gone.url
    with nb.Sandbox(time_scale=1e9) as sandbox, nb.WebhookReceiver(log) as receiver:
        api = nb.ImpiloClient(base_url=sandbox.url, api_key=sandbox.api_key, timeout=HANG_GUARD)
        api.webhooks.create(type="device.lowBattery", url=dead)
        api.webhooks.create(type=EVENT, url=receiver.url)
        sandbox.emit("device.lowBattery", {"id": 1})  # fails; its retry is due in ~400 centuries
        for n in range(8):  # more than the workers: each would have woken to the far-off retry and died
            sandbox.emit(EVENT, {"id": n, "weight": 70})
            assert log.wait_for(n + 1, timeout=HANG_GUARD)
