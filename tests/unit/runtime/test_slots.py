"""Task slots: a process's jobs take Ray's CPUs in the order of their priorities."""

from __future__ import annotations

import threading
import time

from advbench.runtime.slots import TaskSlots


def test_a_job_of_higher_priority_takes_the_next_free_slot():
    slots = TaskSlots(settle_s=0)
    slots.resize(1)
    low = slots.want(priority=1)
    assert slots.acquire(low, timeout=0)
    high = slots.want(priority=5)
    assert not slots.acquire(high, timeout=0.01)  # no slot free
    slots.release()
    assert not slots.acquire(low, timeout=0.01)  # free, but the higher job is waiting
    assert slots.acquire(high, timeout=0)
    slots.release()
    slots.done(high)  # every task of the higher job submitted: the lower one goes on
    assert slots.acquire(low, timeout=0) and slots.busy == 1


def test_jobs_of_equal_priority_take_turns_by_arrival_and_capacity_bounds_the_tasks_in_flight():
    slots = TaskSlots(settle_s=0)
    slots.resize(2)
    first, second = slots.want(priority=3), slots.want(priority=3)
    assert not slots.acquire(second, timeout=0)
    assert slots.acquire(first, timeout=0) and slots.acquire(first, timeout=0)
    assert not slots.acquire(first, timeout=0.01)  # two in flight: the capacity
    slots.done(first)
    slots.release()
    assert slots.acquire(second, timeout=0)


def test_a_waiting_job_wakes_when_a_slot_is_released():
    slots = TaskSlots(settle_s=0)
    slots.resize(1)
    a, b = slots.want(priority=2), slots.want(priority=1)
    assert slots.acquire(a, timeout=0)
    slots.done(a)
    got = []
    waiter = threading.Thread(target=lambda: got.append(slots.acquire(b, timeout=None)))
    waiter.start()
    waiter.join(0.1)
    assert waiter.is_alive() and not got  # blocked while the slot is taken
    slots.release()
    waiter.join(5)
    assert got == [True]


def test_jobs_registering_together_are_all_in_line_before_the_first_slot_goes():
    """The start race: a lower job registers and asks for both slots; a higher one registers 0.1 s later.
    Every slot waits until registrations settle, so the higher job gets both."""
    slots = TaskSlots(settle_s=0.5)
    slots.resize(2)
    grants: list[str] = []

    def take(tag: str, job: int) -> None:
        while slots.acquire(job, timeout=2):
            grants.append(tag)
        slots.done(job)

    low = threading.Thread(target=take, args=("low", slots.want(priority=1)))
    low.start()
    time.sleep(0.1)
    high = threading.Thread(target=take, args=("high", slots.want(priority=2)))
    high.start()
    for t in (low, high):
        t.join(10)
    assert grants == ["high", "high"]  # the lower job never found a free slot before it gave up


def test_no_slot_is_granted_until_registrations_settle_and_none_means_no_cap():
    slots = TaskSlots(settle_s=0.3)
    slots.resize(None)
    job = slots.want(priority=1)
    assert not slots.acquire(job, timeout=0)  # registered a moment ago
    start = time.monotonic()
    assert slots.acquire(job, timeout=None)
    assert time.monotonic() - start >= 0.2
    assert all(slots.acquire(job, timeout=0) for _ in range(100)) and slots.busy == 101


def test_jobs_of_priority_zero_start_no_settling_but_wait_out_a_training_jobs():
    """Attack and experiment jobs (priority 0) are not what the order is for: they start at once, unless a
    training job has just registered, whose settling every job waits out."""
    slots = TaskSlots(settle_s=30)
    slots.resize(2)
    attack = slots.want(priority=0)
    assert slots.acquire(attack, timeout=0)  # no wait although settle_s is 30 s
    slots.done(attack)
    train = slots.want(priority=1)
    late = slots.want(priority=0)
    assert not slots.acquire(late, timeout=0) and not slots.acquire(train, timeout=0)  # settling
