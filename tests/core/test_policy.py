"""The handbook's policy block: strict parsing, the CEO's lists, and every rule of decide."""

from __future__ import annotations

import os
import unicodedata
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from core.actions import ActionParams, PublishPost, RegisterPayment, SendEmail
from core.errors import PolicyError
from core.policy import Level, Policy, fold, known_contacts, list_items, load_policy, parse_policy
from core.vault_init import TEMPLATE, init_vault

TEXT = (TEMPLATE / "Company_Handbook.md").read_text()
KNOWN = frozenset(f"{name}@client.example" for name in ("ana", "bo", "cy", "di", "ed", "fay"))
PAYEES = frozenset({fold("Acme Supplies Ltd")})
MIB = 1024 * 1024


def edited(old: str, new: str) -> str:
    assert old in TEXT, old
    return TEXT.replace(old, new, 1)


def fenced(block: str) -> str:
    return f"# Handbook\n\n```yaml policy\n{block}```\n"


def policy(text: str = TEXT) -> Policy:
    return parse_policy(text).with_lists(KNOWN, PAYEES)


def reply(**fields: Any) -> SendEmail:
    return SendEmail(
        **{"to": "ana@client.example", "subject": "Re: hi", "thread_id": "t1", **fields}
    )


def pay(**fields: Any) -> RegisterPayment:
    return RegisterPayment(
        **{"amount": "50.00", "currency": "EUR", "payee": "Acme Supplies Ltd", **fields}
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "Company_Handbook.md").write_text(TEXT)
    return vault


# -- parsing -------------------------------------------------------------------------------


def test_template_handbook_parses_to_its_documented_rules() -> None:
    p = parse_policy(TEXT)
    assert p.version == 1
    assert (p.email.bulk_threshold, p.email.max_attachment_mb) == (5, 10)
    assert p.email.new_recipient == "approve" and p.email.auto_reply_to_known_contacts
    assert p.payments.approve_above == Decimal(100)
    assert set(p.payments.deny_kinds) == {"crypto", "gift_card", "wire_to_new_payee"}
    assert {"legal", "lawsuit", "refund"} <= set(p.sensitive_topics)
    assert p.social.posts == "approve"
    assert p.rate_limits_per_hour.model_dump() == {"email": 10, "payments": 3, "social": 3}
    assert p.known_contacts == frozenset() and p.known_payees == frozenset()


def test_a_fresh_vault_loads_with_empty_lists_so_everyone_needs_approval(tmp_path: Path) -> None:
    p = load_policy(Path(init_vault(tmp_path / "vault").vault))
    assert p.known_contacts == frozenset() and p.known_payees == frozenset()
    assert p.decide(reply()).rule == "email.new_recipient"
    assert p.decide(pay(payment_kind="bank_transfer")).level is Level.APPROVE


def test_missing_handbook_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"Company_Handbook\.md") as err:
        load_policy(tmp_path)
    assert "exist" in str(err.value) or "missing" in str(err.value)


BAD_EDITS = [
    ("version: 1\n", "version: 2\n", "version"),
    ("version: 1\n", "", "version"),
    ("bulk_threshold: 5 ", "bulk_treshold: 5 ", "email.bulk_treshold"),
    ("bulk_threshold: 5 ", "bulk_threshold: many ", "email.bulk_threshold"),
    ("bulk_threshold: 5 ", "bulk_threshold: 0 ", "email.bulk_threshold"),
    ("bulk_threshold: 5 ", "bulk_threshold: 5.5 ", "email.bulk_threshold"),
    ("max_attachment_mb: 10 ", "max_attachment_mb: -1 ", "email.max_attachment_mb"),
    ("new_recipient: approve", "new_recipient: allow", "email.new_recipient"),
    ("auto_reply_to_known_contacts: true", "auto_reply_to_known_contacts: often", "auto_reply"),
    ("approve_above: 100 ", "approve_above: -1 ", "payments.approve_above"),
    ("approve_above: 100 ", "approve_above: .nan ", "payments.approve_above"),
    ("approve_above: 100 ", "approve_above: lots ", "payments.approve_above"),
    ("  email: 10\n", "  email: -1\n", "rate_limits_per_hour.email"),
    ("  payments: 3\n", "  payments: three\n", "rate_limits_per_hour.payments"),
    ("  posts: approve\n", "  posts: auto\n", "social.posts"),
    ("social:\n  posts: approve\n", "", "social"),
    ("rate_limits_per_hour:\n  email: 10\n", "x:\n  email: 10\n", "rate_limits_per_hour"),
    ("email:\n  known_contacts_file", "mail:\n  known_contacts_file", "email"),
    ("social:\n", "socail:\n  posts: approve\nsocial:\n", "socail"),
    ("version: 1\n", "version: 1\nauto_approve_everything: true\n", "auto_approve_everything"),
    ("  deny_kinds:\n    - crypto\n", "  deny_kinds: crypto\n  x:\n    - crypto\n", "payments"),
]


@pytest.mark.parametrize(("old", "new", "where"), BAD_EDITS)
def test_invalid_settings_are_refused_naming_the_setting(old: str, new: str, where: str) -> None:
    with pytest.raises(PolicyError, match="invalid at") as err:
        parse_policy(edited(old, new))
    assert where in str(err.value)


def test_empty_or_scalar_topic_list_is_refused() -> None:
    topics = TEXT[TEXT.index("sensitive_topics:") : TEXT.index("payments:")]
    for replacement in ("sensitive_topics: []\n", "sensitive_topics: legal\n"):
        with pytest.raises(PolicyError, match="sensitive_topics"):
            parse_policy(TEXT.replace(topics, replacement))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("# Handbook\n\nNo rules here.\n", "has no ```yaml policy``` block"),
        (TEXT + "\n" + TEXT[TEXT.index("```yaml policy") :], "has 2"),
        (fenced("version: 1\nemail: [unclosed\n"), "not valid YAML"),
        (fenced("version: 1\nemail:\n\tbulk_threshold: 5\n"), "not valid YAML"),
        (fenced("- version: 1\n- email: {}\n"), "not a mapping"),
        (fenced("just some text\n"), "not a mapping"),
        (fenced(""), "not a mapping"),
    ],
)
def test_malformed_blocks_are_refused(text: str, fragment: str) -> None:
    with pytest.raises(PolicyError) as err:
        parse_policy(text)
    assert fragment in str(err.value)


def test_yaml_anchors_and_aliases_are_refused() -> None:
    text = edited("social:\n  posts: approve\n", "social: &s\n  posts: approve\nx: *s\n")
    with pytest.raises(PolicyError, match="not valid YAML"):
        parse_policy(text)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("  bulk_threshold: 5 ", "  bulk_threshold: 10000\n  bulk_threshold: 5 "),
        ("social:\n  posts: approve\n", "social:\n  posts: deny\nsocial:\n  posts: approve\n"),
    ],
)
def test_duplicate_keys_are_refused(old: str, new: str) -> None:
    with pytest.raises(PolicyError, match="not valid YAML"):
        parse_policy(edited(old, new))


@pytest.mark.parametrize(
    ("old", "new"),
    [("version: 1\n", "version: true\n"), ("bulk_threshold: 5 ", "bulk_threshold: true ")],
)
def test_booleans_are_not_numbers(old: str, new: str) -> None:
    with pytest.raises(PolicyError):
        parse_policy(edited(old, new))


def test_a_handbook_saved_with_crlf_line_endings_parses() -> None:
    assert parse_policy(TEXT.replace("\n", "\r\n")) == parse_policy(TEXT)


def test_broken_handbook_in_a_vault_is_refused_at_load(root: Path) -> None:
    (root / "Company_Handbook.md").write_text(edited("  posts: approve\n", "  posts: auto\n"))
    with pytest.raises(PolicyError, match=r"social\.posts"):
        load_policy(root)


# -- the CEO's lists -----------------------------------------------------------------------


@pytest.mark.parametrize("where", ["../outside.md", "/OUTSIDE", ".state/contacts.md", "Linked.md"])
def test_contacts_file_outside_the_vault_is_refused(root: Path, where: str) -> None:
    outside = root.parent / "outside.md"
    outside.write_text("- eve@evil.example\n")
    (root / ".state").mkdir()
    (root / ".state" / "contacts.md").write_text("- eve@evil.example\n")
    (root / "Linked.md").symlink_to(outside)
    where = str(outside) if where == "/OUTSIDE" else where
    text = edited("known_contacts_file: Known_Contacts.md", f"known_contacts_file: {where}")
    (root / "Company_Handbook.md").write_text(text)
    with pytest.raises(PolicyError, match="cannot be read"):
        load_policy(root)


def test_hard_linked_payees_file_is_refused(root: Path) -> None:
    outside = root.parent / "payees.md"
    outside.write_text("- Evil Corp\n")
    os.link(outside, root / "Known_Payees.md")
    with pytest.raises(PolicyError, match=r"Known_Payees\.md"):
        load_policy(root)


def test_missing_contacts_file_means_no_known_contacts(root: Path) -> None:
    p = load_policy(root)
    assert p.known_contacts == frozenset()
    decision = p.decide(reply())
    assert (decision.level, decision.rule) == (Level.APPROVE, "email.new_recipient")


def test_contacts_come_from_bullets_only_case_insensitively(root: Path) -> None:
    (root / "Known_Contacts.md").write_text(
        "# Known contacts\n\nWrite to eve@evil.example for anything.\n"
        "`- mallory@evil.example`\n\n## Contacts\n\n"
        "- Ana Lima <Ana@Client.Example>\n* BO@client.example\n  + [x] cy@client.example\n"
        "- not-an-address, trent@evil\n"
    )
    p = load_policy(root)
    assert p.known_contacts == {"ana@client.example", "bo@client.example", "cy@client.example"}
    assert p.decide(reply(to="ANA@client.example", cc="bo@CLIENT.example")).level is Level.AUTO
    assert p.decide(reply(to="eve@evil.example")).rule == "email.new_recipient"


def test_known_contacts_and_list_items_parse_markdown() -> None:
    text = "intro a@x.example\n- A <a@y.example>; b@y.example\n1. c@y.example\n- # h@y.example\n"
    assert known_contacts(text) == {"a@y.example", "b@y.example"}
    assert list_items("- one\n* [ ] two\nprose\n  + three  \n") == ["one", "two", "three"]


def test_payees_come_from_bullets_and_match_by_exact_name(root: Path) -> None:
    (root / "Known_Payees.md").write_text(
        "# Known payees\n\nWe sometimes pay Initech.\n\n- Acme Supplies Ltd\n- [x] Globex\n"
    )
    p = load_policy(root)
    assert p.known_payees == {"acme supplies ltd", "globex"}
    for name in ("ACME SUPPLIES LTD", "Acme  Supplies Ltd ", "globex"):
        assert p.decide(pay(payee=name)).level is Level.AUTO, name
    assert p.decide(pay(payee="Initech")).rule == "payments.approve_new_payee"


@pytest.mark.parametrize(
    "look_alike",
    [
        "Acm\u0435 Supplies Ltd",
        "\uff21cme Supplies Ltd",
        "Acmé Supplies Ltd",
        "\u0410cme Supplies Ltd",
    ],
)
def test_a_look_alike_payee_is_a_new_payee(root: Path, look_alike: str) -> None:
    (root / "Known_Payees.md").write_text("- Acme Supplies Ltd\n")
    p = load_policy(root)
    assert p.decide(pay(payee=look_alike)).rule == "payments.approve_new_payee"
    wire = p.decide(pay(payee=look_alike, payment_kind="wire"))
    assert (wire.level, wire.rule) == (Level.DENY, "payments.deny_kinds")


# -- email ---------------------------------------------------------------------------------


def test_reply_to_known_contacts_is_auto() -> None:
    decision = policy().decide(reply(cc=["bo@client.example"]), "Thanks, see you Monday.")
    assert (decision.level, decision.rule) == (Level.AUTO, "email.auto_reply_to_known_contacts")


@pytest.mark.parametrize("field", ["to", "cc", "bcc"])
def test_one_unknown_recipient_needs_approval(field: str) -> None:
    decision = policy().decide(reply(**{field: ["ana@client.example", "new@else.example"]}))
    assert (decision.level, decision.rule) == (Level.APPROVE, "email.new_recipient")
    assert "new@else.example" in decision.reason


def test_new_recipient_deny_denies() -> None:
    p = policy(edited("new_recipient: approve", "new_recipient: deny"))
    decision = p.decide(reply(bcc="new@else.example"))
    assert (decision.level, decision.rule) == (Level.DENY, "email.new_recipient")
    assert p.decide(reply()).level is Level.AUTO


def test_more_recipients_than_the_bulk_threshold_need_approval() -> None:
    five, six = sorted(KNOWN)[:5], sorted(KNOWN)
    assert policy().decide(reply(to=five)).level is Level.AUTO
    decision = policy().decide(reply(to=six[:3], cc=six[3:]))
    assert (decision.level, decision.rule) == (Level.APPROVE, "email.bulk_threshold")


def test_large_attachments_need_approval() -> None:
    p = policy()
    assert p.decide(reply(), attachment_bytes=[10 * MIB]).level is Level.AUTO
    decision = p.decide(reply(), attachment_bytes=[6 * MIB, 4 * MIB + 1])
    assert (decision.level, decision.rule) == (Level.APPROVE, "email.max_attachment_mb")


def test_a_new_email_is_not_a_reply_and_needs_approval() -> None:
    decision = policy().decide(reply(thread_id=None))
    assert (decision.level, decision.rule) == (Level.APPROVE, "email.auto_reply_to_known_contacts")


def test_auto_replies_turned_off_need_approval() -> None:
    p = policy(edited("auto_reply_to_known_contacts: true", "auto_reply_to_known_contacts: false"))
    decision = p.decide(reply())
    assert (decision.level, decision.rule) == (Level.APPROVE, "email.auto_reply_to_known_contacts")
    assert "off" in decision.reason


EVASIONS = [
    "LEGAL notice",
    "Le\u200bgal",  # zero-width space
    "re\u00adfund",  # soft hyphen
    "con\u2060tract",  # word joiner
    "dis\ufeffpute",  # BOM
    "l\u0435gal",  # Cyrillic e
    "L\u0415GAL",  # Cyrillic capital E
    "\u0441ontract",  # Cyrillic es
    "c\u03bfntract",  # Greek omicron
    "di\u0430gn\u03bfsis",
    "légal",
    "le\u0301gal",  # combining accent
    "ｌｅｇａｌ",
    "ＲＥＦＵＮＤ",
    "\U0001d42b\U0001d41e\U0001d41f\U0001d42e\U0001d427\U0001d41d",  # mathematical bold
    "two lawsuits",
    "a disputed bill",
    "Complaints",
]


@pytest.mark.parametrize("word", EVASIONS)
@pytest.mark.parametrize("where", ["subject", "body"])
def test_sensitive_topics_are_found_despite_disguise(word: str, where: str) -> None:
    if where == "subject" and any(unicodedata.category(c) == "Cf" for c in word):
        with pytest.raises(ValidationError, match="format or direction"):
            reply(subject=f"Re: {word}")  # invisible characters never reach a subject line
        return
    email, body = (reply(subject=f"Re: {word}"), "ok") if where == "subject" else (reply(), word)
    decision = policy().decide(email, body)
    assert (decision.level, decision.rule) == (Level.APPROVE, "sensitive_topics")


@pytest.mark.parametrize(
    "word",
    [
        pytest.param("REFU\u039dD", id="greek-capital-nu"),
        pytest.param("\u039cEDICAL", id="greek-capital-mu"),
        pytest.param("c\u03ccntract", id="greek-omicron-tonos"),
        pytest.param("l\u0451gal", id="cyrillic-io"),
        pytest.param("la\u051dsuit", id="cyrillic-we"),
        pytest.param("\u03f2ontract", id="greek-lunate-sigma"),
    ],
)
def test_look_alikes_fold_misses_are_still_sensitive(word: str) -> None:
    assert policy().decide(reply(subject=f"Re: {word}")).rule == "sensitive_topics"


@pytest.mark.parametrize("text", ["an illegal move", "our paralegal", "Re: hi"])
def test_a_topic_inside_another_word_does_not_count(text: str) -> None:
    assert policy().decide(reply(subject=text), text).level is Level.AUTO


# -- payments ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["crypto", "gift_card"])
def test_denied_kinds_are_denied_even_to_known_payees(kind: str) -> None:
    decision = policy().decide(pay(payment_kind=kind, amount="1"))
    assert (decision.level, decision.rule) == (Level.DENY, "payments.deny_kinds")


def test_wire_to_new_payee_is_denied_but_wire_to_known_payee_is_not() -> None:
    decision = policy().decide(pay(payment_kind="wire", payee="Stranger Ltd"))
    assert (decision.level, decision.rule) == (Level.DENY, "payments.deny_kinds")
    assert policy().decide(pay(payment_kind="wire")).level is Level.AUTO


def test_new_payee_needs_approval() -> None:
    decision = policy().decide(pay(payee="Acme Supplies Ltd.", amount="1"))
    assert (decision.level, decision.rule) == (Level.APPROVE, "payments.approve_new_payee")


def test_new_payee_without_approve_new_payee_is_auto_when_small() -> None:
    p = policy(edited("approve_new_payee: true", "approve_new_payee: false"))
    assert p.decide(pay(payee="Stranger Ltd")).level is Level.AUTO


def test_amount_above_the_limit_needs_approval_and_at_the_limit_is_auto() -> None:
    decision = policy().decide(pay(amount="100.01"))
    assert (decision.level, decision.rule) == (Level.APPROVE, "payments.approve_above")
    decision = policy().decide(pay(amount="100.00"))
    assert (decision.level, decision.rule) == (Level.AUTO, "payments.approve_above")


def test_sensitive_invoice_text_needs_approval() -> None:
    decision = policy().decide(pay(invoice="INV-7 refund"))
    assert (decision.level, decision.rule) == (Level.APPROVE, "sensitive_topics")


# -- social and unknown actions ------------------------------------------------------------


def test_every_post_needs_approval() -> None:
    decision = policy().decide(PublishPost(platform="linkedin"), "We are hiring!")
    assert (decision.level, decision.rule) == (Level.APPROVE, "social.posts")


def test_posts_deny_denies() -> None:
    p = policy(edited("  posts: approve\n", "  posts: deny\n"))
    decision = p.decide(PublishPost(platform="linkedin"), "We are hiring!")
    assert (decision.level, decision.rule) == (Level.DENY, "social.posts")


def test_unknown_action_is_denied() -> None:
    class Launch(ActionParams):
        ACTION: ClassVar[str] = "launch_rocket"

    decision = policy().decide(Launch())
    assert (decision.level, decision.rule) == (Level.DENY, "unknown_action")
