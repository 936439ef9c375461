"""Payment rules beyond the basics: the company currency and checked payment kinds."""

from __future__ import annotations

import pytest

from core.actions import RegisterPayment
from core.errors import PolicyError
from core.policy import Level, parse_policy
from core.vault_init import TEMPLATE

TEXT = (TEMPLATE / "Company_Handbook.md").read_text()
PAYEES = frozenset({"acme supplies ltd"})


def pay(currency: str, amount: str = "20.00") -> RegisterPayment:
    return RegisterPayment(amount=amount, currency=currency, payee="Acme Supplies Ltd")


def test_a_small_payment_to_a_known_payee_in_the_company_currency_is_auto() -> None:
    policy = parse_policy(TEXT).with_lists(frozenset(), PAYEES)
    assert policy.decide(pay("EUR")).level is Level.AUTO


@pytest.mark.parametrize("currency", ["USD", "JPY", "BHD"])
def test_another_currency_always_needs_approval(currency: str) -> None:
    decision = parse_policy(TEXT).with_lists(frozenset(), PAYEES).decide(pay(currency, "1.00"))
    assert (decision.level, decision.rule) == (Level.APPROVE, "payments.currency")


def test_without_a_company_currency_the_rule_is_off() -> None:
    text = TEXT.replace("  currency: EUR", "  # currency: EUR", 1)
    policy = parse_policy(text).with_lists(frozenset(), PAYEES)
    assert policy.payments.currency is None
    assert policy.decide(pay("USD")).level is Level.AUTO


@pytest.mark.parametrize("kind", ["gift-card", "Crypto", "", "wire to new payee"])
def test_a_misspelt_deny_kind_is_refused_not_ignored(kind: str) -> None:
    text = TEXT.replace("    - crypto\n", f"    - {kind!r}\n", 1)
    with pytest.raises(PolicyError, match="deny_kinds"):
        parse_policy(text)


@pytest.mark.parametrize("currency", ["eur", "EURO", "€"])
def test_a_malformed_company_currency_is_refused(currency: str) -> None:
    with pytest.raises(PolicyError, match=r"payments\.currency"):
        parse_policy(TEXT.replace("currency: EUR", f"currency: {currency!r}", 1))


def test_yaml_errors_say_why() -> None:
    text = TEXT.replace("  email: 10\n", "  email: 10\n  email: 11\n", 1)
    with pytest.raises(PolicyError, match="duplicate keys: email"):
        parse_policy(text)
