"""Retry of repeatable reads, and the persisted thread-safe circuit breaker."""

from __future__ import annotations

import functools
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.errors import CircuitOpenError, NotRepeatableError, ServiceError
from core.resilience import (
    BreakerState,
    CircuitBreaker,
    RetryPolicy,
    breaker_snapshots,
    call_with_retry,
    get_breaker,
    repeatable,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
START = 1_800_000_000.0


class FakeClock:
    """A wall clock that moves only when the test says so."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Flaky:
    """Fails with the given errors in turn, then returns "ok"; counts calls."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    @repeatable
    def read(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


# --- retry -------------------------------------------------------------------


def test_retries_marked_flaky_function_until_it_succeeds() -> None:
    flaky, sleeps = Flaky(ConnectionError("a"), TimeoutError("b")), Sleeps()
    assert call_with_retry(flaky.read, sleep=sleeps) == "ok"
    assert flaky.calls == 3
    assert len(sleeps) == 2


def test_gives_up_after_tries_and_reraises_the_last_error() -> None:
    errors = [OSError(f"attempt {i}") for i in range(1, 6)]
    flaky, sleeps = Flaky(*errors), Sleeps()
    with pytest.raises(OSError) as info:
        call_with_retry(flaky.read, policy=RetryPolicy(tries=4), sleep=sleeps)
    assert info.value is errors[3]
    assert flaky.calls == 4
    assert len(sleeps) == 3


def test_backoff_waits_are_full_jitter_within_the_growing_bound_and_the_cap() -> None:
    flaky, sleeps = Flaky(*[ServiceError("down")] * 29), Sleeps()
    policy = RetryPolicy(tries=30, base=0.5, cap=4.0)
    assert call_with_retry(flaky.read, policy=policy, sleep=sleeps) == "ok"
    assert len(sleeps) == 29
    for attempt, wait in enumerate(sleeps, start=1):
        assert 0 <= wait <= min(policy.cap, policy.base * 2 ** (attempt - 1))
    # Uncapped, the late waits would be drawn from ranges of thousands of seconds.
    assert max(sleeps) > policy.base


@pytest.mark.parametrize(
    "error",
    [ValueError("bad input"), CircuitOpenError("open"), NotRepeatableError("nested")],
    ids=["not-listed", "circuit-open", "not-repeatable"],
)
def test_never_retries_an_error_outside_retry_on(error: Exception) -> None:
    flaky, sleeps = Flaky(error), Sleeps()
    with pytest.raises(type(error)) as info:
        call_with_retry(flaky.read, sleep=sleeps)
    assert info.value is error
    assert flaky.calls == 1
    assert sleeps == []


def test_retry_on_is_configurable() -> None:
    policy = RetryPolicy(retry_on=(KeyError,))
    flaky = Flaky(KeyError("k"))
    assert call_with_retry(flaky.read, policy=policy, sleep=Sleeps()) == "ok"
    flaky = Flaky(OSError("io"))
    with pytest.raises(OSError):
        call_with_retry(flaky.read, policy=policy, sleep=Sleeps())
    assert flaky.calls == 1


def test_unmarked_function_is_refused_before_it_is_called() -> None:
    calls = []

    def send_email() -> None:
        calls.append(1)

    with pytest.raises(NotRepeatableError) as info:
        call_with_retry(send_email, sleep=Sleeps())
    assert calls == []
    assert "send_email" in str(info.value)
    assert "@repeatable" in str(info.value)


def test_unmarked_bound_method_is_refused() -> None:
    class Poster:
        calls = 0

        def publish(self) -> None:
            self.calls += 1

    poster = Poster()
    with pytest.raises(NotRepeatableError):
        call_with_retry(poster.publish, sleep=Sleeps())
    assert poster.calls == 0


def test_bound_method_and_partial_of_marked_function_work() -> None:
    flaky = Flaky(OSError("once"))
    assert call_with_retry(flaky.read, sleep=Sleeps()) == "ok"
    assert flaky.calls == 2

    @repeatable
    def lookup(key: str, *, default: str) -> str:
        return f"{key}={default}"

    assert call_with_retry(functools.partial(lookup, "a"), default="b") == "a=b"


@pytest.mark.parametrize(
    "kwargs", [{"tries": 0}, {"base": 0}, {"base": -1.0}, {"base": 2.0, "cap": 1.0}]
)
def test_invalid_policy_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


# --- circuit breaker -------------------------------------------------------------


def open_breaker(tmp_path: Path, clock: FakeClock, name: str = "gmail") -> CircuitBreaker:
    breaker = CircuitBreaker(name, tmp_path, clock=clock)
    for _ in range(5):
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    return breaker


def fail(exc: BaseException) -> None:
    raise exc


def test_opens_after_five_consecutive_failures(tmp_path: Path) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("gmail", tmp_path, clock=clock)
    for _ in range(4):
        with pytest.raises(ConnectionError):
            breaker.call(fail, ConnectionError("down"))
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot().failures == 4
    with pytest.raises(ConnectionError):
        breaker.call(fail, ConnectionError("down"))
    snap = breaker.snapshot()
    assert (snap.state, snap.failures, snap.opened_at) == (BreakerState.OPEN, 5, START)
    assert snap.retry_at == START + 300


def test_success_in_closed_resets_the_failure_count(tmp_path: Path) -> None:
    breaker = CircuitBreaker("gmail", tmp_path, clock=FakeClock())
    for _ in range(4):
        breaker.record_failure()
    assert breaker.call(lambda: 42) == 42
    assert breaker.snapshot().failures == 0
    for _ in range(4):
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_open_breaker_refuses_without_calling_and_says_what_to_do(tmp_path: Path) -> None:
    clock = FakeClock()
    breaker = open_breaker(tmp_path, clock)
    calls = []
    clock.advance(299)
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(calls.append, 1)
    assert calls == []
    message = str(info.value)
    retry_at = datetime.fromtimestamp(START + 300, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert "gmail" in message
    assert retry_at in message
    assert "ai-employee status" in message


def test_half_open_after_reset_timeout_and_trial_success_closes(tmp_path: Path) -> None:
    clock = FakeClock()
    breaker = open_breaker(tmp_path, clock)
    clock.advance(300)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.call(lambda: "pong") == "pong"
    snap = breaker.snapshot()
    assert (snap.state, snap.failures, snap.opened_at, snap.retry_at) == (
        BreakerState.CLOSED,
        0,
        None,
        None,
    )


def test_trial_failure_reopens_with_a_fresh_opened_at(tmp_path: Path) -> None:
    clock = FakeClock()
    breaker = open_breaker(tmp_path, clock)
    clock.advance(400)
    with pytest.raises(TimeoutError):
        breaker.call(fail, TimeoutError("still down"))
    snap = breaker.snapshot()
    assert (snap.state, snap.opened_at) == (BreakerState.OPEN, START + 400)
    clock.advance(299)
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: None)
    clock.advance(1)
    assert breaker.state is BreakerState.HALF_OPEN


def test_only_one_trial_call_at_a_time(tmp_path: Path) -> None:
    clock = FakeClock()
    breaker = open_breaker(tmp_path, clock)
    clock.advance(300)
    started, release = threading.Event(), threading.Event()
    results: list[str] = []

    def slow_trial() -> str:
        started.set()
        assert release.wait(10)
        return "ok"

    trial = threading.Thread(target=lambda: results.append(breaker.call(slow_trial)))
    trial.start()
    try:
        assert started.wait(10)
        second_calls = []
        with pytest.raises(CircuitOpenError) as info:
            breaker.call(second_calls.append, 1)
        assert second_calls == []
        assert "trial" in str(info.value)
    finally:
        release.set()
        trial.join(10)
    assert results == ["ok"]
    assert breaker.state is BreakerState.CLOSED


def test_non_failure_exceptions_pass_through_without_counting(tmp_path: Path) -> None:
    breaker = CircuitBreaker(
        "odoo", tmp_path, clock=FakeClock(), is_failure=lambda e: not isinstance(e, ValueError)
    )
    error = ValueError("422: invalid invoice")
    for _ in range(10):
        with pytest.raises(ValueError) as info:
            breaker.call(fail, error)
        assert info.value is error
    assert breaker.snapshot().failures == 0


def test_by_default_a_nested_open_breaker_is_not_a_failure(tmp_path: Path) -> None:
    breaker = CircuitBreaker("gmail", tmp_path, clock=FakeClock())
    for _ in range(10):
        with pytest.raises(CircuitOpenError):
            breaker.call(fail, CircuitOpenError("another service is open"))
    with pytest.raises(RuntimeError):
        breaker.call(fail, RuntimeError("boom"))
    assert breaker.snapshot().failures == 1


def test_non_failure_exception_in_trial_frees_the_trial_slot(tmp_path: Path) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        "odoo", tmp_path, clock=clock, is_failure=lambda e: not isinstance(e, ValueError)
    )
    for _ in range(5):
        breaker.record_failure()
    clock.advance(300)
    with pytest.raises(ValueError):
        breaker.call(fail, ValueError("422"))
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.call(lambda: 1) == 1
    assert breaker.state is BreakerState.CLOSED


def test_success_of_a_call_begun_before_opening_does_not_close(tmp_path: Path) -> None:
    breaker = CircuitBreaker("gmail", tmp_path, clock=FakeClock())
    started, release = threading.Event(), threading.Event()

    def slow_read() -> None:
        started.set()
        assert release.wait(10)

    slow = threading.Thread(target=breaker.call, args=(slow_read,))
    slow.start()
    assert started.wait(10)
    for _ in range(5):
        breaker.record_failure()
    release.set()
    slow.join(10)
    assert breaker.state is BreakerState.OPEN


def test_record_success_closes_an_open_breaker(tmp_path: Path) -> None:
    breaker = open_breaker(tmp_path, FakeClock())
    breaker.record_success()
    assert breaker.snapshot().state is BreakerState.CLOSED
    assert CircuitBreaker("gmail", tmp_path).state is BreakerState.CLOSED


def test_open_state_survives_a_new_breaker_on_the_same_state_dir(tmp_path: Path) -> None:
    clock = FakeClock()
    open_breaker(tmp_path, clock)
    calls = []
    restarted = CircuitBreaker("gmail", tmp_path, clock=clock)
    assert restarted.snapshot().opened_at == START
    with pytest.raises(CircuitOpenError):
        restarted.call(calls.append, 1)
    assert calls == []
    clock.advance(300)
    assert CircuitBreaker("gmail", tmp_path, clock=clock).state is BreakerState.HALF_OPEN


def test_open_state_survives_in_a_separate_process(tmp_path: Path) -> None:
    breaker = CircuitBreaker("gmail", tmp_path)
    for _ in range(5):
        breaker.record_failure()
    code = (
        "import sys; from pathlib import Path; from core.resilience import CircuitBreaker; "
        "b = CircuitBreaker('gmail', Path(sys.argv[1])); s = b.snapshot(); "
        "print(s.state.value, s.failures)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.split() == ["open", "5"]


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"",
        b'{"name": "gmail", "state": "open"}',
        b'{"name": "odoo", "state": "closed", "failures": 0, "opened_at": null, "retry_at": null}',
        b'{"name": "gmail", "state": "open", "failures": 1, "opened_at": null, "retry_at": null}',
        b"\xff\xfe",
    ],
    ids=["garbage", "empty", "missing-fields", "wrong-name", "open-without-time", "not-utf8"],
)
def test_corrupt_state_file_starts_open_with_a_warning(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "breakers").mkdir()
    (tmp_path / "breakers" / "gmail.json").write_bytes(content)
    clock = FakeClock()
    with caplog.at_level(logging.WARNING, logger="core.resilience"):
        breaker = CircuitBreaker("gmail", tmp_path, clock=clock)
    assert breaker.state is BreakerState.OPEN
    assert any("gmail" in r.getMessage() and "OPEN" in r.getMessage() for r in caplog.records)
    clock.advance(300)
    assert breaker.call(lambda: "ok") == "ok"
    assert breaker.state is BreakerState.CLOSED


def test_state_path_that_is_not_a_file_does_not_crash(tmp_path: Path) -> None:
    (tmp_path / "breakers" / "gmail.json").mkdir(parents=True)
    breaker = CircuitBreaker("gmail", tmp_path, clock=FakeClock())
    assert breaker.state is BreakerState.OPEN


def test_breaker_snapshots_lists_persisted_breakers_sorted(tmp_path: Path) -> None:
    clock = FakeClock()
    assert breaker_snapshots(tmp_path) == []
    (tmp_path / "breakers").mkdir()
    (tmp_path / "breakers" / "social.json").write_text("corrupt")
    (tmp_path / "breakers" / "notes.txt").write_text("not a breaker")
    (tmp_path / "breakers" / ".gmail.json.1234.tmp").write_text("half written")
    open_breaker(tmp_path, clock, "odoo")
    closed = CircuitBreaker("gmail", tmp_path, clock=clock)
    closed.record_failure()
    for name in ["zz", "yy", "xx", "c", "b", "a"]:
        CircuitBreaker(name, tmp_path, clock=clock).record_failure()
    snaps = breaker_snapshots(tmp_path, clock=clock)
    assert [(s.name, s.state, s.failures) for s in snaps] == [
        ("a", BreakerState.CLOSED, 1),
        ("b", BreakerState.CLOSED, 1),
        ("c", BreakerState.CLOSED, 1),
        ("gmail", BreakerState.CLOSED, 1),
        ("odoo", BreakerState.OPEN, 5),
        ("social", BreakerState.OPEN, 0),
        ("xx", BreakerState.CLOSED, 1),
        ("yy", BreakerState.CLOSED, 1),
        ("zz", BreakerState.CLOSED, 1),
    ]
    assert snaps[4].retry_at == START + 300
    clock.advance(300)
    assert breaker_snapshots(tmp_path, clock=clock)[4].state is BreakerState.HALF_OPEN


def test_state_file_is_json_written_on_every_change(tmp_path: Path) -> None:
    breaker = CircuitBreaker("gmail", tmp_path, clock=FakeClock())
    path = tmp_path / "breakers" / "gmail.json"
    assert breaker.call(lambda: "no change") == "no change"
    assert not path.exists()
    breaker.record_failure()
    assert json.loads(path.read_text())["failures"] == 1
    breaker.record_failure()
    assert json.loads(path.read_text())["failures"] == 2


@pytest.fixture
def eager_thread_switching() -> Iterator[None]:
    """Switch threads as often as possible, so an unlocked read-modify-write would lose counts."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


@pytest.mark.usefixtures("eager_thread_switching")
def test_concurrent_failures_are_counted_exactly(tmp_path: Path) -> None:
    breaker = CircuitBreaker("gmail", tmp_path, failure_threshold=10_000, clock=FakeClock())
    threads, per_thread = 8, 100
    barrier = threading.Barrier(threads)

    def hammer() -> None:
        barrier.wait()
        for _ in range(per_thread):
            with pytest.raises(OSError):
                breaker.call(fail, OSError("down"))
            breaker.record_failure()

    workers = [threading.Thread(target=hammer) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert breaker.snapshot().failures == 2 * threads * per_thread
    assert CircuitBreaker("gmail", tmp_path).snapshot().failures == 2 * threads * per_thread


@pytest.mark.parametrize("name", ["", "Gmail", "-x", "_x", "a/b", "../x", "a" * 64, "x\n", "é"])
def test_invalid_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(name, tmp_path)
    assert not (tmp_path / "breakers").exists()


def test_valid_names_and_options(tmp_path: Path) -> None:
    assert CircuitBreaker("a" * 63, tmp_path).state is BreakerState.CLOSED
    assert CircuitBreaker("odoo_v2-api", tmp_path).state is BreakerState.CLOSED
    with pytest.raises(ValueError):
        CircuitBreaker("gmail", tmp_path, failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker("gmail", tmp_path, reset_timeout=0)


def test_get_breaker_gives_one_instance_per_state_dir_and_name(tmp_path: Path) -> None:
    found: list[CircuitBreaker] = []
    barrier = threading.Barrier(8)

    def get() -> None:
        barrier.wait()
        found.append(get_breaker("gmail", tmp_path / "a"))

    workers = [threading.Thread(target=get) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    assert len(found) == 8
    assert all(b is found[0] for b in found)
    assert get_breaker("odoo", tmp_path / "a") is not found[0]
    assert get_breaker("gmail", tmp_path / "b") is not found[0]


def test_retry_does_not_hammer_an_open_breaker(tmp_path: Path) -> None:
    breaker = open_breaker(tmp_path, FakeClock())
    calls, sleeps = [], Sleeps()

    @repeatable
    def read_inbox() -> None:
        breaker.call(calls.append, 1)

    with pytest.raises(CircuitOpenError):
        call_with_retry(read_inbox, sleep=sleeps)
    assert calls == []
    assert sleeps == []
