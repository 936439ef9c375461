"""Retries for reads and circuit breakers for outside services.

Only operations marked ``@repeatable`` are ever retried: sends, posts and payments
never are. A breaker's state lives in ``<state_dir>/breakers/<name>.json``, so a
restart does not forget an open breaker.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import pydantic

from core.errors import CircuitOpenError, NotRepeatableError, ServiceError
from core.fsutil import atomic_write

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
_MARK = "_ai_employee_repeatable"
_NEVER_RETRIED = (CircuitOpenError, NotRepeatableError)
DEFAULT_RETRY_ON = (OSError, TimeoutError, ConnectionError, ServiceError)
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def repeatable(fn: F) -> F:
    """Mark ``fn`` as safe to repeat (a read or lookup), so call_with_retry may retry it."""
    setattr(fn, _MARK, True)
    return fn


def is_repeatable(fn: Callable[..., Any]) -> bool:
    """True if ``fn`` (or the function behind a bound method or partial) is marked."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(fn, _MARK, False) is True


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry; CircuitOpenError and NotRepeatableError never are."""

    tries: int = 3
    base: float = 1.0
    cap: float = 60.0
    retry_on: tuple[type[BaseException], ...] = DEFAULT_RETRY_ON

    def __post_init__(self) -> None:
        if self.tries < 1 or self.base <= 0 or self.cap < self.base:
            raise ValueError(
                f"Invalid RetryPolicy(tries={self.tries}, base={self.base}, cap={self.cap}): "
                "need tries >= 1, base > 0 and cap >= base"
            )


DEFAULT_POLICY = RetryPolicy()


def call_with_retry(
    fn: Callable[..., T],
    /,
    *args: Any,
    policy: RetryPolicy = DEFAULT_POLICY,
    sleep: Callable[[float], None] = time.sleep,
    **kwargs: Any,
) -> T:
    """Call ``fn``, retrying with full-jitter exponential backoff; re-raise the last error."""
    if not is_repeatable(fn):
        name = getattr(fn, "__qualname__", repr(fn))
        raise NotRepeatableError(
            f"Refused to retry {name}: it is not marked safe to repeat",
            "Sends, posts and payments are never retried automatically; "
            "mark reads and lookups with @repeatable",
        )
    import tenacity  # on first use: servers import this module at start, retries come later

    retrying = tenacity.Retrying(
        sleep=sleep,
        stop=tenacity.stop_after_attempt(policy.tries),
        wait=tenacity.wait_random_exponential(multiplier=policy.base, max=policy.cap),
        retry=tenacity.retry_if_exception_type(policy.retry_on)
        & tenacity.retry_if_not_exception_type(_NEVER_RETRIED),
        before_sleep=tenacity.before_sleep_log(log, logging.WARNING),
        reraise=True,
    )
    return retrying(fn, *args, **kwargs)


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerSnapshot(pydantic.BaseModel):
    """A breaker as `ai-employee status` shows it; also the shape of its state file."""

    name: str
    state: BreakerState
    failures: int = pydantic.Field(ge=0)
    opened_at: float | None
    retry_at: float | None


def _default_is_failure(exc: BaseException) -> bool:
    return isinstance(exc, Exception) and not isinstance(exc, CircuitOpenError)


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ValueError(
            f"Invalid breaker name {name!r}: use 1-63 lowercase letters, digits, '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def _read_state(path: Path, name: str) -> BreakerSnapshot | None:
    """The persisted state, None if there is none; OSError or ValueError if unusable."""
    try:
        snap = BreakerSnapshot.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    if snap.name != name or snap.state is BreakerState.HALF_OPEN:
        raise ValueError(f"the file describes {snap.name!r} in state {snap.state}")
    if snap.state is BreakerState.OPEN and snap.opened_at is None:
        raise ValueError("an open breaker without opened_at")
    return snap


class CircuitBreaker:
    """Thread-safe breaker for one named service, persisted across restarts."""

    def __init__(
        self,
        name: str,
        state_dir: Path,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 300.0,
        clock: Callable[[], float] = time.time,
        is_failure: Callable[[BaseException], bool] = _default_is_failure,
    ) -> None:
        if failure_threshold < 1 or reset_timeout <= 0:
            raise ValueError("failure_threshold must be >= 1 and reset_timeout > 0")
        self.name = _check_name(name)
        self.failure_threshold, self.reset_timeout = failure_threshold, reset_timeout
        self._path = Path(state_dir) / "breakers" / f"{name}.json"
        self._clock, self._is_failure = clock, is_failure
        self._lock = threading.Lock()
        self._trial_running = False
        # Only CLOSED or OPEN are stored; HALF_OPEN is an OPEN breaker whose timeout has passed.
        self._state, self._failures, self._opened_at = BreakerState.CLOSED, 0, None
        self._load()

    def _load(self) -> None:
        try:
            snap = _read_state(self._path, self.name)
        except (OSError, ValueError) as exc:
            log.warning(
                "breaker %r: state file %s is unreadable (%s); starting OPEN to be safe",
                self.name,
                self._path,
                exc,
            )
            self._save(BreakerState.OPEN, 0, self._clock())
            return
        if snap is not None:
            self._state, self._failures, self._opened_at = snap.state, snap.failures, snap.opened_at

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._current()

    def snapshot(self) -> BreakerSnapshot:
        with self._lock:
            return self._snapshot(self._current())

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` through the breaker; raise CircuitOpenError instead while it is open."""
        trial = self._admit()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._finish(trial, failed=self._is_failure(exc))
            raise
        self._finish(trial, succeeded=True)
        return result

    def record_success(self) -> None:
        """Record that the service just worked: the breaker closes."""
        with self._lock:
            self._save(BreakerState.CLOSED, 0, None)

    def record_failure(self) -> None:
        """Record one failure, as a failed call through the breaker would."""
        self._finish(trial=False, failed=True)

    def _current(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() >= self._retry_at():
            return BreakerState.HALF_OPEN
        return self._state

    def _retry_at(self) -> float:
        return (self._opened_at or 0.0) + self.reset_timeout

    def _snapshot(self, state: BreakerState) -> BreakerSnapshot:
        retry_at = self._retry_at() if self._state is BreakerState.OPEN else None
        return BreakerSnapshot(
            name=self.name,
            state=state,
            failures=self._failures,
            opened_at=self._opened_at,
            retry_at=retry_at,
        )

    def _admit(self) -> bool:
        """Let a call through (True if it is the half-open trial) or raise CircuitOpenError."""
        with self._lock:
            state = self._current()
            if state is BreakerState.CLOSED:
                return False
            if state is BreakerState.HALF_OPEN and not self._trial_running:
                self._trial_running = True
                return True
            if state is BreakerState.HALF_OPEN:
                raise CircuitOpenError(
                    f"Service '{self.name}' is unavailable: its circuit breaker is letting one "
                    "trial call through and held this one back",
                    "Try again in a moment; run `ai-employee status` to see breaker states",
                )
            when = datetime.fromtimestamp(self._retry_at(), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            raise CircuitOpenError(
                f"Service '{self.name}' is unavailable: its circuit breaker is open after "
                f"{self._failures} consecutive failures; it will try again at {when}",
                f"Check that '{self.name}' is reachable and its credentials work; "
                "run `ai-employee status` to see breaker states",
            )

    def _finish(self, trial: bool, *, failed: bool = False, succeeded: bool = False) -> None:
        with self._lock:
            if trial:
                self._trial_running = False
            if failed:
                self._count_failure(trial)
            elif succeeded and (trial or self._state is BreakerState.CLOSED):
                # A non-trial success while OPEN began before the breaker opened: ignore it.
                self._save(BreakerState.CLOSED, 0, None)

    def _count_failure(self, trial: bool) -> None:
        failures, current = self._failures + 1, self._current()
        reopen = (
            trial
            or (current is BreakerState.HALF_OPEN and not self._trial_running)
            or (current is BreakerState.CLOSED and failures >= self.failure_threshold)
        )
        if reopen:
            self._save(BreakerState.OPEN, failures, self._clock())
        else:
            self._save(self._state, failures, self._opened_at)

    def _save(self, state: BreakerState, failures: int, opened_at: float | None) -> None:
        if (state, failures, opened_at) == (self._state, self._failures, self._opened_at):
            return
        self._state, self._failures, self._opened_at = state, failures, opened_at
        data = self._snapshot(state).model_dump_json(indent=2).encode()
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self._path, data)
        except OSError as exc:
            # Still protects this process; only a restart would forget.
            log.warning("breaker %r: could not save state to %s: %s", self.name, self._path, exc)


_registry: dict[tuple[Path, str], CircuitBreaker] = {}
_registry_lock = threading.Lock()


def get_breaker(name: str, state_dir: Path, **kwargs: Any) -> CircuitBreaker:
    """The one breaker for ``name`` under ``state_dir`` in this process.

    ``kwargs`` (CircuitBreaker's keyword options) apply only when it is first made.
    """
    key = (Path(state_dir).resolve(), _check_name(name))
    with _registry_lock:
        if key not in _registry:
            _registry[key] = CircuitBreaker(name, state_dir, **kwargs)
        return _registry[key]


def breaker_snapshots(
    state_dir: Path, *, clock: Callable[[], float] = time.time
) -> list[BreakerSnapshot]:
    """Every persisted breaker under ``state_dir``, sorted by name; unreadable ones show OPEN."""
    folder = Path(state_dir) / "breakers"
    names = sorted(p.stem for p in folder.glob("*.json") if _NAME_RE.fullmatch(p.stem))
    snaps = (_snapshot_from_file(folder / f"{name}.json", name, clock()) for name in names)
    return [snap for snap in snaps if snap is not None]


def _snapshot_from_file(path: Path, name: str, now: float) -> BreakerSnapshot | None:
    try:
        snap = _read_state(path, name)
    except (OSError, ValueError) as exc:
        log.warning("breaker %r: state file %s is unreadable (%s); shown OPEN", name, path, exc)
        return BreakerSnapshot(
            name=name, state=BreakerState.OPEN, failures=0, opened_at=None, retry_at=None
        )
    if snap and snap.state is BreakerState.OPEN and snap.retry_at and now >= snap.retry_at:
        return snap.model_copy(update={"state": BreakerState.HALF_OPEN})
    return snap
