"""The action ledger on real files: intent before the call, result after, one file per key."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.actions import idempotency_key
from core.errors import VaultError
from core.ledger import ActionLedger, LedgerEntry

KEY = idempotency_key("REQ_1", "ab" * 32)
OTHER = idempotency_key("REQ_2", "ab" * 32)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "vault" / ".state"


@pytest.fixture
def ledger(state: Path) -> ActionLedger:
    return ActionLedger(state)


def intend(ledger: ActionLedger, key: str = KEY, **over: object) -> LedgerEntry:
    fields: dict[str, object] = {
        "request_id": "REQ_1",
        "action": "send_email",
        "file": "Approved/REQ_1.md",
        "dry_run": False,
    }
    fields.update(over)
    return ledger.intend(key, **fields)  # type: ignore[arg-type]


def entry_file(state: Path, key: str = KEY, *, dry_run: bool = False) -> Path:
    return state / "ledger" / (f"dry-{key}.json" if dry_run else f"{key}.json")


# -- intent and result ---------------------------------------------------------------------


def test_nothing_is_recorded_for_an_unknown_key(ledger: ActionLedger) -> None:
    assert ledger.get(KEY, dry_run=False) is None
    assert ledger.get(KEY, dry_run=True) is None


def test_intend_records_an_intent_that_reads_back(ledger: ActionLedger, state: Path) -> None:
    before = datetime.now(UTC)
    entry = intend(ledger)
    assert (entry.key, entry.request_id, entry.action) == (KEY, "REQ_1", "send_email")
    assert (entry.file, entry.dry_run, entry.phase) == ("Approved/REQ_1.md", False, "intent")
    assert entry.finished_at is None and entry.result == {} and entry.error is None
    assert before <= entry.intent_at <= datetime.now(UTC)
    assert ledger.get(KEY, dry_run=False) == entry
    assert json.loads(entry_file(state).read_text())["phase"] == "intent"


def test_intend_twice_returns_the_existing_entry(ledger: ActionLedger, state: Path) -> None:
    first = intend(ledger)
    raw = entry_file(state).read_bytes()
    again = intend(ledger, request_id="REQ_X", action="publish_post", file="Approved/other.md")
    assert again == first
    assert entry_file(state).read_bytes() == raw
    assert sorted(p.name for p in (state / "ledger").iterdir() if p.is_file()) == [f"{KEY}.json"]


def test_intend_after_finish_returns_the_finished_entry(ledger: ActionLedger) -> None:
    done = ledger.finish(intend(ledger), "done", {"message_id": "m1"})
    assert intend(ledger) == done
    assert intend(ledger).phase == "done"


def test_finish_records_phase_result_and_time(ledger: ActionLedger) -> None:
    entry = intend(ledger)
    done = ledger.finish(entry, "done", {"message_id": "m1", "n": 2})
    assert (done.phase, done.result, done.error) == ("done", {"message_id": "m1", "n": 2}, None)
    assert done.finished_at is not None and done.finished_at >= entry.intent_at
    assert (done.key, done.request_id, done.intent_at) == (KEY, "REQ_1", entry.intent_at)
    assert ledger.get(KEY, dry_run=False) == done


@pytest.mark.parametrize("phase", ["failed", "unknown"])
def test_finish_records_an_error(ledger: ActionLedger, phase: str) -> None:
    ended = ledger.finish(intend(ledger), phase, {}, "SMTP 550: mailbox unavailable")  # type: ignore[arg-type]
    stored = ledger.get(KEY, dry_run=False)
    assert stored == ended
    assert stored is not None and stored.phase == phase
    assert stored.error == "SMTP 550: mailbox unavailable"


def test_keys_are_kept_apart(ledger: ActionLedger) -> None:
    intend(ledger)
    assert ledger.get(OTHER, dry_run=False) is None
    other = intend(ledger, OTHER, request_id="REQ_2")
    assert ledger.get(OTHER, dry_run=False) == other
    assert ledger.get(KEY, dry_run=False) != other


def test_dry_run_and_live_entries_are_separate(ledger: ActionLedger, state: Path) -> None:
    dry = ledger.finish(intend(ledger, dry_run=True), "done", {"dry_run": True})
    assert ledger.get(KEY, dry_run=False) is None
    live = intend(ledger)
    assert (live.phase, live.dry_run) == ("intent", False)
    assert ledger.get(KEY, dry_run=True) == dry
    assert ledger.get(KEY, dry_run=False) == live
    assert entry_file(state, dry_run=True).is_file() and entry_file(state).is_file()
    ledger.finish(live, "failed", {}, "boom")
    assert ledger.get(KEY, dry_run=True) == dry


# -- bad keys ------------------------------------------------------------------------------


BAD_KEYS = [
    "",
    "../x",
    "../" + KEY,
    KEY + "/../x",
    "/etc/" + KEY,
    KEY.upper(),
    KEY[:15],
    "g" * 16,
    "a" * 65,
    "dry-" + KEY,
    KEY + ".json",
    " " + KEY,
    KEY + "\x00",
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_a_bad_key_is_refused_everywhere(ledger: ActionLedger, state: Path, key: str) -> None:
    with pytest.raises(VaultError, match="is not an idempotency key"):
        ledger.get(key, dry_run=False)
    with pytest.raises(VaultError, match="is not an idempotency key"):
        intend(ledger, key)
    with pytest.raises(VaultError, match="is not an idempotency key"):
        intend(ledger, key, dry_run=True)
    written = [p for p in state.parent.parent.rglob("*") if p.is_file()]
    assert written == []


def test_a_key_with_a_trailing_newline_is_refused(ledger: ActionLedger) -> None:
    with pytest.raises(VaultError, match="is not an idempotency key"):
        intend(ledger, KEY + "\n")


def test_finish_refuses_an_entry_with_a_bad_key(ledger: ActionLedger, state: Path) -> None:
    forged = intend(ledger).model_copy(update={"key": "../../outside"})
    with pytest.raises(VaultError, match="is not an idempotency key"):
        ledger.finish(forged, "done", {})
    assert not (state.parent / "outside.json").exists()
    assert ledger.get(KEY, dry_run=False) is not None


# -- corrupt entries -----------------------------------------------------------------------


CORRUPT = [
    b"",
    b"garbage",
    b"[]",
    b'{"key": "x"}',
    b"\xff\xfe",
    b'{"key": "k", "request_id": "r", "action": "a", "file": "f", "dry_run": false,'
    b' "phase": "maybe", "intent_at": "2026-03-02T09:00:00Z"}',
]


@pytest.mark.parametrize("content", CORRUPT)
def test_a_corrupt_entry_says_to_check_by_hand(
    ledger: ActionLedger, state: Path, content: bytes
) -> None:
    (state / "ledger").mkdir(parents=True)
    entry_file(state).write_bytes(content)
    for call in (lambda: ledger.get(KEY, dry_run=False), lambda: intend(ledger)):
        with pytest.raises(VaultError) as err:
            call()
        message = str(err.value)
        assert f"{KEY}.json is unreadable" in message
        assert "check the service by hand" in message
    assert entry_file(state).read_bytes() == content


def test_an_entry_that_is_a_link_or_folder_is_refused(
    ledger: ActionLedger, state: Path, tmp_path: Path
) -> None:
    elsewhere = ActionLedger(tmp_path / "elsewhere")
    intend(elsewhere)  # a valid entry, but outside: the link to it is never followed
    (state / "ledger").mkdir(parents=True)
    entry_file(state).symlink_to(entry_file(tmp_path / "elsewhere"))
    entry_file(state, OTHER).mkdir()
    for key in (KEY, OTHER):
        with pytest.raises(VaultError, match="check the service by hand"):
            ledger.get(key, dry_run=False)
    with pytest.raises(VaultError, match="check the service by hand"):
        intend(ledger)
    assert elsewhere.get(KEY, dry_run=False) is not None


# -- permissions ---------------------------------------------------------------------------


def test_entries_are_private(ledger: ActionLedger, state: Path) -> None:
    entry = intend(ledger)
    intend(ledger, dry_run=True)
    assert stat.S_IMODE((state / "ledger").stat().st_mode) == 0o700
    for path in (entry_file(state), entry_file(state, dry_run=True)):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ledger.finish(entry, "done", {})
    assert stat.S_IMODE(entry_file(state).stat().st_mode) == 0o600
    assert not [p for p in os.listdir(state / "ledger") if p.endswith(".tmp")]
