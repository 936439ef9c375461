"""Hourly rate limits on real files: sliding windows, restarts, several processes, bad state."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.errors import VaultError
from core.ratelimit import STATE_FILE, RateLimiter

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LIMITS = {"email": 3, "payments": 1, "social": 0}


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "vault" / ".state"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def limiter(state: Path, clock: Clock) -> RateLimiter:
    return RateLimiter(state, LIMITS, clock=clock)


def stored(state: Path) -> dict[str, dict[str, str]]:
    return json.loads((state / STATE_FILE).read_text())


CHILD = """
import sys, time
from pathlib import Path
from core.ratelimit import RateLimiter
state, limit, prefix, tries = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
go = state.parent / "go"
deadline = time.monotonic() + 60
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.001)
limiter = RateLimiter(state, {"email": limit})
print(sum(limiter.reserve("email", f"{prefix}-{i}") for i in range(tries)))
"""


def spawn(state: Path, limit: int, prefix: str, tries: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(state), str(limit), prefix, str(tries)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> int:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return int(out)


# -- counting ------------------------------------------------------------------------------


def test_reserve_up_to_the_limit_then_refuse(limiter: RateLimiter, state: Path) -> None:
    assert [limiter.reserve("email", f"k{i}") for i in range(4)] == [True, True, True, False]
    assert limiter.remaining("email") == 0
    assert set(stored(state)["email"]) == {"k0", "k1", "k2"}


def test_a_refused_reservation_counts_nothing(limiter: RateLimiter, state: Path) -> None:
    for i in range(3):
        limiter.reserve("email", f"k{i}")
    before = (state / STATE_FILE).read_bytes()
    assert not limiter.reserve("email", "k3")
    assert (state / STATE_FILE).read_bytes() == before


def test_the_same_key_counts_once(limiter: RateLimiter, state: Path) -> None:
    assert limiter.reserve("email", "same")
    assert limiter.reserve("email", "same")
    assert limiter.remaining("email") == 2
    limiter.reserve("email", "k1")
    limiter.reserve("email", "k2")
    assert limiter.reserve("email", "same")  # already counted: a resumed run may go on
    assert not limiter.reserve("email", "other")
    assert len(stored(state)["email"]) == 3


def test_categories_are_counted_apart(limiter: RateLimiter, state: Path) -> None:
    assert limiter.reserve("payments", "p1")
    assert not limiter.reserve("payments", "p2")
    assert limiter.reserve("email", "p2")
    assert limiter.remaining("email") == 2
    assert stored(state) == {
        "email": {"p2": "2026-03-02T09:00:00Z"},
        "payments": {"p1": "2026-03-02T09:00:00Z"},
    }


def test_a_zero_limit_allows_nothing(limiter: RateLimiter, state: Path) -> None:
    assert not limiter.reserve("social", "post1")
    assert limiter.remaining("social") == 0
    assert not (state / STATE_FILE).exists()


def test_unknown_category_is_an_error(limiter: RateLimiter, state: Path) -> None:
    with pytest.raises(VaultError, match="no rate limit is set for 'fax'"):
        limiter.reserve("fax", "k")
    with pytest.raises(VaultError, match="no rate limit is set for 'fax'"):
        limiter.remaining("fax")
    with pytest.raises(VaultError, match="policy block"):
        limiter.free_again_at("fax")
    assert not (state / STATE_FILE).exists()


# -- the sliding window --------------------------------------------------------------------


def test_the_window_slides(limiter: RateLimiter, clock: Clock) -> None:
    limiter.reserve("email", "a")
    clock.advance(minutes=10)
    limiter.reserve("email", "b")
    limiter.reserve("email", "c")
    clock.advance(minutes=49, seconds=59)
    assert not limiter.reserve("email", "d")
    clock.advance(seconds=1)  # exactly one hour after "a"
    assert limiter.reserve("email", "d")
    assert not limiter.reserve("email", "e")
    clock.advance(minutes=10)
    assert limiter.remaining("email") == 2


def test_an_old_key_is_counted_again_after_the_window(limiter: RateLimiter, clock: Clock) -> None:
    limiter.reserve("email", "a")
    clock.advance(hours=2)
    assert limiter.remaining("email") == 3
    assert limiter.reserve("email", "a")
    assert limiter.remaining("email") == 2


def test_free_again_at_is_when_the_oldest_use_leaves(limiter: RateLimiter, clock: Clock) -> None:
    assert limiter.free_again_at("email") is None
    limiter.reserve("email", "a")
    clock.advance(minutes=5)
    limiter.reserve("email", "b")
    assert limiter.free_again_at("email") is None
    clock.advance(minutes=5)
    limiter.reserve("email", "c")
    assert limiter.free_again_at("email") == T0 + timedelta(hours=1)
    clock.now = T0 + timedelta(hours=1)
    assert limiter.free_again_at("email") is None
    assert limiter.reserve("email", "d")
    assert limiter.free_again_at("email") == T0 + timedelta(hours=1, minutes=5)


def test_a_lower_limit_waits_for_enough_uses_to_leave(state: Path, clock: Clock) -> None:
    wide = RateLimiter(state, {"email": 3}, clock=clock)
    for minute in (0, 10, 20):
        clock.now = T0 + timedelta(minutes=minute)
        wide.reserve("email", f"k{minute}")
    narrow = RateLimiter(state, {"email": 2}, clock=clock)
    assert narrow.free_again_at("email") == T0 + timedelta(hours=1, minutes=10)


@pytest.mark.parametrize("when", ["not a time", "2999-01-01T00:00:00Z"])
def test_unreadable_or_future_times_still_count(state: Path, clock: Clock, when: str) -> None:
    state.mkdir(parents=True)
    (state / STATE_FILE).write_text(json.dumps({"payments": {"old": when}}))
    limiter = RateLimiter(state, LIMITS, clock=clock)
    assert not limiter.reserve("payments", "new")
    assert limiter.remaining("payments") == 0
    assert limiter.free_again_at("payments") is not None


# -- durability and processes --------------------------------------------------------------


def test_counts_survive_a_restart(limiter: RateLimiter, state: Path, clock: Clock) -> None:
    limiter.reserve("email", "a")
    limiter.reserve("email", "b")
    again = RateLimiter(state, LIMITS, clock=clock)
    assert again.remaining("email") == 1
    assert again.reserve("email", "a")
    assert again.reserve("email", "c")
    assert not again.reserve("email", "d")


def test_counts_made_by_another_process_are_seen(state: Path) -> None:
    state.mkdir(parents=True)
    (state.parent / "go").touch()
    assert finish(spawn(state, 3, "child", 2)) == 2
    parent = RateLimiter(state, {"email": 3})
    assert parent.remaining("email") == 1
    assert parent.reserve("email", "child-0")
    assert parent.remaining("email") == 1
    assert set(stored(state)["email"]) == {"child-0", "child-1"}


@pytest.mark.slow
def test_concurrent_processes_never_exceed_the_limit(state: Path) -> None:
    state.mkdir(parents=True)
    procs = [spawn(state, 7, f"p{n}", 10) for n in range(4)]
    (state.parent / "go").touch()
    assert sum(finish(proc) for proc in procs) == 7
    assert len(stored(state)["email"]) == 7
    assert RateLimiter(state, {"email": 7}).remaining("email") == 0


def test_dry_runs_are_counted_apart_from_live_uses(state: Path, clock: Clock) -> None:
    dry = RateLimiter(state, LIMITS, clock=clock, dry_run=True)
    live = RateLimiter(state, LIMITS, clock=clock)
    assert [dry.reserve("payments", k) for k in ("a", "b")] == [True, False]
    assert live.remaining("payments") == 1
    assert live.reserve("payments", "c")
    assert dry.remaining("payments") == 0
    assert json.loads((state / f"dry-{STATE_FILE}").read_text())["payments"].keys() == {"a"}
    assert stored(state)["payments"].keys() == {"c"}


def test_state_file_is_private(limiter: RateLimiter, state: Path) -> None:
    limiter.reserve("email", "a")
    assert stat.S_IMODE((state / STATE_FILE).stat().st_mode) == 0o600
    assert not [p for p in state.iterdir() if p.name.endswith(".tmp")]


# -- bad state -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"garbage",
        b'{"email": {"a": "2026-03-02T09:00:00Z"}',
        b"null",
        b"[]",
        b'"email"',
        b'{"email": []}',
        b'{"email": {"a": 5}}',
        b'{"email": {"a": null}}',
        b'{"email": "a"}',
        b"\xff\xfe\x00",
    ],
)
def test_a_corrupt_state_file_stops_everything(state: Path, content: bytes) -> None:
    state.mkdir(parents=True)
    (state / STATE_FILE).write_bytes(content)
    limiter = RateLimiter(state, LIMITS)
    for call in (
        lambda: limiter.reserve("email", "k"),
        lambda: limiter.remaining("email"),
        lambda: limiter.free_again_at("email"),
    ):
        with pytest.raises(VaultError) as err:
            call()
        message = str(err.value)
        assert STATE_FILE in message and "unreadable" in message
        assert "delete the file" in message and "audit trail" in message
    assert (state / STATE_FILE).read_bytes() == content


def test_a_state_folder_in_place_of_the_file_is_refused(state: Path) -> None:
    (state / STATE_FILE).mkdir(parents=True)
    with pytest.raises(VaultError, match="unreadable"):
        RateLimiter(state, LIMITS).reserve("email", "k")
