"""Action parameter models: strict fields, plain addresses, one-line text, exact money, hashes."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from core.actions import (
    ACTIONS,
    RATE_CATEGORY,
    ActionParams,
    PublishPost,
    RegisterPayment,
    SendEmail,
    action_model,
    idempotency_key,
    normalize_address,
    payload_sha256,
)

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HASH = "ab" * 32


def email(**fields: Any) -> SendEmail:
    return SendEmail(**{"to": "ana@client.example", "subject": "Hello", **fields})


def payment(**fields: Any) -> RegisterPayment:
    return RegisterPayment(**{"amount": "12.50", "currency": "EUR", "payee": "Acme", **fields})


# -- addresses -----------------------------------------------------------------------------


def test_addresses_are_lower_cased_and_trimmed() -> None:
    assert normalize_address("  Ana.Lima+x@Client.EXAMPLE \n") == "ana.lima+x@client.example"
    sent = email(to="Ana@Client.Example", cc=["BO@client.example"], bcc="Cy@CLIENT.example")
    assert sent.to == ["ana@client.example"]
    assert (sent.cc, sent.bcc) == (["bo@client.example"], ["cy@client.example"])
    assert sent.recipients() == ["ana@client.example", "bo@client.example", "cy@client.example"]
    assert sent.target() == "ana@client.example"


BAD_ADDRESSES = [
    "",
    "Ana Lima <ana@client.example>",
    "<ana@client.example>",
    "ana@client.example, eve@evil.example",
    "ana@client.example;eve@evil.example",
    "ana@client.example eve@evil.example",
    "ana@client.example\nBcc: eve@evil.example",
    "ana@client.example\r\nBcc: eve@evil.example",
    "ana@client.example\rx",
    "ana lima@client.example",
    "ana@",
    "@client.example",
    "ana@b",
    "ana@@client.example",
    "ana@client..example",
    "ana..lima@client.example",
    "ana@client.example.",
    "ana@cli_ent.example",
    "\u0430na@client.example",  # Cyrillic a
    "a" * 65 + "@client.example",
    "ana@" + "d" * 250 + ".example",
]


@pytest.mark.parametrize("raw", BAD_ADDRESSES)
def test_anything_but_one_plain_address_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="not a plain email address"):
        normalize_address(raw)


@pytest.mark.parametrize("field", ["to", "cc", "bcc"])
@pytest.mark.parametrize("raw", BAD_ADDRESSES[1:8])
def test_bad_addresses_are_refused_in_every_recipient_field(field: str, raw: str) -> None:
    with pytest.raises(ValidationError) as err:
        email(**{field: ["bo@client.example", raw]})
    assert [e["loc"] for e in err.value.errors()] == [(field,)]
    assert "not a plain email address" in str(err.value)


def test_an_email_needs_a_recipient_and_a_subject() -> None:
    for fields in ({"to": []}, {"subject": ""}):
        with pytest.raises(ValidationError):
            email(**fields)


# -- one-line text and strict fields --------------------------------------------------------


CONTROL = ["Hi\r\nBcc: eve@evil.example", "Hi\nBcc: x", "Hi\rthere", "a\x00b", "a\tb"]
CONTROL += ["\x1b[31mred", "del\x7f", "next\u0085line", "line\u2028sep", "para\u2029sep"]


@pytest.mark.parametrize("text", CONTROL)
def test_control_characters_in_one_line_fields_are_refused(text: str) -> None:
    with pytest.raises(ValidationError, match="one line"):
        email(subject=text)
    with pytest.raises(ValidationError, match="one line"):
        email(in_reply_to=text)
    with pytest.raises(ValidationError, match="one line"):
        payment(payee=text)
    with pytest.raises(ValidationError, match="one line"):
        payment(invoice=text)


@pytest.mark.parametrize("field", ["subject", "in_reply_to", "payee", "invoice"])
def test_a_trailing_newline_is_refused_too(field: str) -> None:
    with pytest.raises(ValidationError, match="one line"):
        (email if field in ("subject", "in_reply_to") else payment)(**{field: "Hello\n"})


def test_unicode_text_on_one_line_is_kept() -> None:
    assert email(subject="Re: Café ☕ 東京").subject == "Re: Café ☕ 東京"


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        (SendEmail, {"to": "ana@client.example", "subject": "Hi", "too": "eve@evil.example"}),
        (SendEmail, {"to": "ana@client.example", "subject": "Hi", "Bcc": "eve@evil.example"}),
        (RegisterPayment, {"amount": "1", "currency": "EUR", "payee": "A", "amout": "9"}),
        (PublishPost, {"platform": "linkedin", "platfrom": "x"}),
    ],
)
def test_unknown_fields_are_refused(model: type[ActionParams], fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        model(**fields)


@pytest.mark.parametrize("thread", ["../x", "a b", "abc\n", "a/b", "", "x" * 201])
def test_thread_ids_are_plain_tokens(thread: str) -> None:
    with pytest.raises(ValidationError, match="thread_id"):
        email(thread_id=thread)


def test_models_are_frozen() -> None:
    sent = email()
    with pytest.raises(ValidationError):
        sent.to = ["eve@evil.example"]  # type: ignore[misc]


@pytest.mark.parametrize("platform", ["LinkedIn", "x", "../etc", "linked in", "linkedin\n", ""])
def test_platform_names_are_plain_lower_case_words(platform: str) -> None:
    with pytest.raises(ValidationError, match="platform"):
        PublishPost(platform=platform)


# -- money ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("12.50", "12.50"), (19.99, "19.99"), (0.1, "0.1"), (7, "7"), ("999999999999.99", None)],
)
def test_amounts_are_exact_decimals(raw: Any, expected: str | None) -> None:
    amount = payment(amount=raw).amount
    assert isinstance(amount, Decimal)
    assert amount == Decimal(expected or str(raw))


def test_float_arithmetic_noise_is_refused_not_rounded() -> None:
    with pytest.raises(ValidationError, match="amount"):
        payment(amount=0.1 + 0.2)
    assert payment(amount=3.3).amount == Decimal("3.3")


@pytest.mark.parametrize(
    "raw", [0, "0.00", -5, "-0.01", "0.001", "1.005", "NaN", "Infinity", True, "ten", None]
)
def test_bad_amounts_are_refused(raw: Any) -> None:
    with pytest.raises(ValidationError, match="amount"):
        payment(amount=raw)


@pytest.mark.parametrize("currency", ["eur", "EU", "EURO", "E1R", "EUR\n", " EUR", "ÉUR"])
def test_currency_is_three_upper_case_letters(currency: str) -> None:
    with pytest.raises(ValidationError, match="currency"):
        payment(currency=currency)


@pytest.mark.parametrize("kind", ["Crypto", "gift card", "x", "wire\n", "gift-card"])
def test_payment_kinds_are_plain_lower_case_words(kind: str) -> None:
    with pytest.raises(ValidationError, match="payment_kind"):
        payment(payment_kind=kind)


def test_payment_defaults_and_target() -> None:
    p = payment()
    assert (p.payment_kind, p.invoice, p.target()) == ("bank_transfer", None, "Acme")


# -- registry, hashes and keys -------------------------------------------------------------


def test_actions_registry_names_each_model_once() -> None:
    assert {
        "send_email": SendEmail,
        "publish_post": PublishPost,
        "register_payment": RegisterPayment,
    } == ACTIONS
    assert {model.KIND for model in ACTIONS.values()} == set(RATE_CATEGORY)
    assert action_model("send_email") is SendEmail
    with pytest.raises(KeyError):
        action_model("wire_money")


def digest(params: ActionParams, payload: str = "body", **over: str) -> str:
    action, kind = over.get("action", params.ACTION), over.get("kind", params.KIND)
    return payload_sha256(action, kind, params, payload)


def test_payload_hash_is_stable_for_the_same_request() -> None:
    first = digest(email(to="Ana@Client.example", cc=[]))
    assert first == digest(SendEmail(subject="Hello", to=["ana@client.example"]))
    assert re.fullmatch(r"[0-9a-f]{64}", first)


@pytest.mark.parametrize(
    "changed",
    [
        {"to": "bo@client.example"},
        {"to": ["ana@client.example", "bo@client.example"]},
        {"cc": "bo@client.example"},
        {"bcc": "bo@client.example"},
        {"subject": "Hello!"},
        {"thread_id": "t1"},
        {"in_reply_to": "<m1@client.example>"},
        {"attachments": ["Inbox/a.pdf"]},
    ],
)
def test_payload_hash_changes_with_any_email_param(changed: dict[str, Any]) -> None:
    assert digest(email(**changed)) != digest(email())


@pytest.mark.parametrize(
    "changed",
    [
        {"amount": "12.51"},
        {"currency": "USD"},
        {"payee": "Acme Ltd"},
        {"payment_kind": "wire"},
        {"invoice": "INV-1"},
    ],
)
def test_payload_hash_changes_with_any_payment_param(changed: dict[str, Any]) -> None:
    assert digest(payment(**changed)) != digest(payment())


def test_payload_hash_changes_with_payload_action_and_kind() -> None:
    base = digest(email())
    assert digest(email(), "body ") != base
    assert digest(email(), "") != base
    assert digest(email(), action="publish_post") != base
    assert digest(email(), kind="payments") != base
    post = PublishPost(platform="linkedin")
    assert digest(post) != digest(PublishPost(platform="linkedin", media=["Plans/a.png"]))
    assert digest(post) != digest(PublishPost(platform="facebook"))


def test_idempotency_key_is_deterministic_32_hex_and_per_request() -> None:
    key = idempotency_key("REQ_1", HASH)
    assert key == idempotency_key("REQ_1", HASH)
    assert HEX32.match(key)
    assert idempotency_key("REQ_2", HASH) != key
    assert idempotency_key("REQ_1", "cd" * 32) != key
    assert idempotency_key("REQ_1\n" + HASH[:10], HASH[10:]) != key
