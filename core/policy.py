"""The handbook as policy: one ```yaml policy``` block, parsed strictly, decided in code.

``decide`` is called by the tool that proposes or performs an action and again
by the executor; the model's word never overrides it. A missing or malformed
block is an error at start, never "allow everything". The known-contacts and
known-payees lists are markdown lists in the vault that only the CEO edits.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    model_validator,
)

from core import tasks
from core.actions import (
    PAYMENT_KINDS,
    ActionParams,
    PublishPost,
    RegisterPayment,
    SendEmail,
    normalize_address,
)
from core.errors import PolicyError, TaskFileError, VaultError
from core.note_blocks import yaml_block
from core.paths import confine

HANDBOOK = "Company_Handbook.md"
_LIST_ITEM = re.compile(r"^\s*[-*+]\s+(?:\[[ xX]\]\s+)?(.+?)\s*$", re.MULTILINE)
_ADDRESS_IN = re.compile(r"[^\s<>()\[\],;:\"']+@[^\s<>()\[\],;:\"']+")
_MIB = 1024 * 1024
# Latin look-alikes that NFKC keeps (Cyrillic and Greek letters used to dodge keyword rules):
# capitals (and final sigma) are mapped before casefolding: Greek Nu looks like N, but
# its lower case like v.
_UPPER_LOOKALIKES = str.maketrans(
    "АВЕКМНОРСТХУІЈЅΑΒΕΖΗΙΚΜΝΟΡΤΥΧς",
    "ABEKMHOPCTXYIJSABEZHIKMNOPTYXc",
)
_LOWER_LOOKALIKES = str.maketrans(
    "аеорсухіјѕԁһкмптвнʟӏɡԝϲοαερτυνικχμɩ",
    "aeopcyxijsdhkmntbhllgwcoaeptuvikxmi",
)


_KIND_NAMES = "|".join(PAYMENT_KINDS)
DeniedKind = Annotated[str, StringConstraints(pattern=rf"^({_KIND_NAMES})(_to_new_payee)?$")]


class Level(StrEnum):
    AUTO = "AUTO"
    APPROVE = "APPROVE"
    DENY = "DENY"


class Decision(BaseModel):
    level: Level
    rule: str
    reason: str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_as_numbers(cls, data: Any) -> Any:
        """YAML ``true`` must not pass as the number 1."""
        if isinstance(data, dict):
            for name, value in data.items():
                field = cls.model_fields.get(str(name))
                if isinstance(value, bool) and field is not None and field.annotation is not bool:
                    raise ValueError(f"{name} must not be true or false")
        return data


class EmailRules(_Strict):
    known_contacts_file: str = "Known_Contacts.md"
    auto_reply_to_known_contacts: bool = True
    new_recipient: Literal["approve", "deny"] = "approve"
    bulk_threshold: int = Field(default=5, ge=1, le=10_000)
    max_attachment_mb: float = Field(default=10, gt=0, le=1_000)


class PaymentRules(_Strict):
    known_payees_file: str = "Known_Payees.md"
    approve_new_payee: bool = True
    approve_above: Decimal = Field(default=Decimal(100), ge=0)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    deny_kinds: list[DeniedKind] = Field(default_factory=list)


class SocialRules(_Strict):
    posts: Literal["approve", "deny"] = "approve"


class RateLimits(_Strict):
    email: int = Field(default=10, ge=0, le=10_000)
    payments: int = Field(default=3, ge=0, le=10_000)
    social: int = Field(default=3, ge=0, le=10_000)


class Policy(_Strict):
    """The rules of the handbook's policy block (every section is required)."""

    version: Literal[1]
    email: EmailRules
    sensitive_topics: list[str] = Field(min_length=1)
    payments: PaymentRules
    social: SocialRules
    rate_limits_per_hour: RateLimits
    _contacts: frozenset[str] = PrivateAttr(default_factory=frozenset)
    _payees: frozenset[str] = PrivateAttr(default_factory=frozenset)

    def with_lists(self, contacts: frozenset[str], payees: frozenset[str]) -> Policy:
        copy = self.model_copy()
        copy._contacts, copy._payees = contacts, payees
        return copy

    @property
    def known_contacts(self) -> frozenset[str]:
        return self._contacts

    @property
    def known_payees(self) -> frozenset[str]:
        return self._payees

    def decide(
        self, action: ActionParams, payload: str = "", *, attachment_bytes: Sequence[int] = ()
    ) -> Decision:
        """AUTO, APPROVE or DENY for ``action``, naming the rule that fired."""
        if isinstance(action, SendEmail):
            return self._email(action, payload, sum(attachment_bytes))
        if isinstance(action, RegisterPayment):
            return self._payment(action, payload)
        if isinstance(action, PublishPost):
            return self._post(action, payload)
        name = getattr(action, "ACTION", type(action).__name__)
        return Decision(level=Level.DENY, rule="unknown_action", reason=f"{name} is not known")

    def sensitive_topic(self, *texts: str) -> str | None:
        """The first sensitive topic found in ``texts`` (look-alike letters and case ignored)."""
        haystack = " ".join(fold(text) for text in texts)
        for topic in self.sensitive_topics:
            if re.search(rf"(?<![a-z0-9]){re.escape(fold(topic))}", haystack):
                return topic
        return None

    def _email(self, action: SendEmail, payload: str, attached: int) -> Decision:
        rules = self.email
        unknown = [r for r in action.recipients() if r not in self._contacts]
        if unknown and rules.new_recipient == "deny":
            return _deny("email.new_recipient", f"{unknown[0]} is not a known contact")
        if unknown:
            return _approve("email.new_recipient", f"{unknown[0]} is not a known contact")
        if len(action.recipients()) > rules.bulk_threshold:
            count = len(action.recipients())
            return _approve(
                "email.bulk_threshold", f"{count} recipients (> {rules.bulk_threshold})"
            )
        if attached > rules.max_attachment_mb * _MIB:
            size = f"{attached / _MIB:.1f} MB"
            return _approve(
                "email.max_attachment_mb", f"{size} attached (> {rules.max_attachment_mb})"
            )
        if topic := self.sensitive_topic(action.subject, payload):
            return _approve("sensitive_topics", f"mentions {topic!r}")
        if not action.thread_id:
            return _approve(
                "email.auto_reply_to_known_contacts", "a new email, not a reply, needs approval"
            )
        if not rules.auto_reply_to_known_contacts:
            return _approve("email.auto_reply_to_known_contacts", "automatic replies are off")
        return Decision(
            level=Level.AUTO,
            rule="email.auto_reply_to_known_contacts",
            reason="a reply to known contacts only",
        )

    def _payment(self, action: RegisterPayment, payload: str) -> Decision:
        rules = self.payments
        new_payee = payee_key(action.payee) not in self._payees
        kinds = {action.payment_kind} | (
            {f"{action.payment_kind}_to_new_payee"} if new_payee else set()
        )
        if denied := sorted(kinds & set(rules.deny_kinds)):
            return _deny("payments.deny_kinds", f"{denied[0]} payments are never made")
        if rules.currency and action.currency != rules.currency:
            return _approve("payments.currency", f"{action.currency} is not {rules.currency}")
        if new_payee and rules.approve_new_payee:
            return _approve("payments.approve_new_payee", f"{action.payee!r} is a new payee")
        if action.amount > rules.approve_above:
            return _approve(
                "payments.approve_above", f"{action.amount} is above {rules.approve_above}"
            )
        if topic := self.sensitive_topic(action.payee, action.invoice or "", payload):
            return _approve("sensitive_topics", f"mentions {topic!r}")
        return Decision(
            level=Level.AUTO, rule="payments.approve_above", reason="known payee, small amount"
        )

    def _post(self, action: PublishPost, payload: str) -> Decision:
        if self.social.posts == "deny":
            return _deny("social.posts", "the handbook allows no social posts")
        if topic := self.sensitive_topic(payload):
            return _approve("sensitive_topics", f"mentions {topic!r}")
        return _approve("social.posts", f"every post to {action.platform} needs approval")


def _approve(rule: str, reason: str) -> Decision:
    return Decision(level=Level.APPROVE, rule=rule, reason=reason)


def _deny(rule: str, reason: str) -> Decision:
    return Decision(level=Level.DENY, rule=rule, reason=reason)


def _kept(char: str) -> bool:
    return unicodedata.category(char) not in {"Cf", "Mn"}


def payee_key(name: str) -> str:
    """A payee as the known-payees list matches it: exact up to case and spacing.

    Deliberately not :func:`fold`: a look-alike name must count as a new payee.
    """
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


def fold(text: str) -> str:
    """Text as the keyword rules see it: NFKC, casefolded, no format characters or accents,
    look-alike letters mapped to Latin ones."""
    text = unicodedata.normalize("NFKC", text).translate(_UPPER_LOOKALIKES).casefold()
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if _kept(c))
    return re.sub(r"\s+", " ", text.translate(_LOWER_LOOKALIKES))


def parse_policy(text: str, source: str = HANDBOOK) -> Policy:
    """The policy block of a handbook's text; PolicyError if it is missing or malformed."""
    raw = yaml_block(
        text,
        "policy",
        source,
        PolicyError,
        restore="restore the policy block from vault_template/Company_Handbook.md",
        fix_yaml="fix the YAML there",
        fix_shape="write key: value lines",
    )
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise PolicyError(
            f"the policy block in {source} is invalid at {where}: {first['msg']}",
            "fix that setting; nothing runs until the policy is valid",
        ) from None


def _read_text(root: Path, rel: str, *, required: bool) -> str | None:
    try:
        path = confine(root, rel, must_exist=False)
        return tasks.read_bytes_safely(path).decode("utf-8")
    except FileNotFoundError:
        if required:
            raise PolicyError(f"{rel} is missing", "run `ai-employee init` to restore it") from None
        return None
    except (VaultError, TaskFileError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{rel} cannot be read ({exc})", "fix or restore the file") from None


def list_items(text: str) -> list[str]:
    """The items of the markdown bullet lists in ``text`` (prose and headings are ignored)."""
    return [item for item in _LIST_ITEM.findall(text) if not item.startswith("#")]


def known_contacts(text: str) -> frozenset[str]:
    """Addresses from list items such as ``- Alice <alice@example.com>``."""
    found: set[str] = set()
    for item in list_items(text):
        for candidate in _ADDRESS_IN.findall(item):
            try:
                found.add(normalize_address(candidate))
            except ValueError:
                continue
    return frozenset(found)


def load_policy(vault_root: Path) -> Policy:
    """Read the handbook's policy and the CEO's lists from the vault; PolicyError if unusable."""
    text = _read_text(vault_root, HANDBOOK, required=True) or ""
    policy = parse_policy(text)
    contacts = _read_text(vault_root, policy.email.known_contacts_file, required=False) or ""
    payees = _read_text(vault_root, policy.payments.known_payees_file, required=False) or ""
    return policy.with_lists(
        known_contacts(contacts), frozenset(map(payee_key, list_items(payees)))
    )
