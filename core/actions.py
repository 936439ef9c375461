"""The outside actions the product knows, as typed parameter models.

An approval request names one action; its parameters are frontmatter fields
and its payload (email body, post text) is the body. The executor reads the
request back into the action's model, so what runs is exactly what validates.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Kind = Literal["email", "payments", "social_media"]
# A closed list, so a policy's deny_kinds can never miss a kind by spelling it differently.
PaymentKind = Literal[
    "bank_transfer", "wire", "card", "direct_debit", "cheque", "cash", "crypto", "gift_card"
]
PAYMENT_KINDS: tuple[str, ...] = PaymentKind.__args__
RATE_CATEGORY: dict[str, str] = {"email": "email", "payments": "payments", "social_media": "social"}

# One address, no display name: nothing that could smuggle a second header or recipient.
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
_ONE_LINE = re.compile(r"[^\x00-\x1f\x7f\u0085\u2028\u2029]*")


def normalize_address(raw: str) -> str:
    """A lowercase address, or ValueError; used for recipients and the known-contacts list."""
    address = raw.strip().lower()
    if len(address) > 254 or not _ADDRESS.fullmatch(address) or ".." in address:
        raise ValueError(f"{raw!r} is not a plain email address (name@example.com)")
    return address


def one_line(value: str) -> str:
    invisible = any(unicodedata.category(char) == "Cf" for char in value)
    if not _ONE_LINE.fullmatch(value) or invisible:
        raise ValueError("must be one line without control, format or direction characters")
    return value


class ActionParams(BaseModel):
    """Common shape: frontmatter fields of one action, validated strictly (typos are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    ACTION: ClassVar[str]
    KIND: ClassVar[Kind]

    def target(self) -> str:
        """A short word for file names and logs (recipient, platform, payee)."""
        raise NotImplementedError

    def files(self) -> list[str]:
        """Vault paths of files the action sends along (attachments, media)."""
        return []


class SendEmail(ActionParams):
    ACTION: ClassVar[str] = "send_email"
    KIND: ClassVar[Kind] = "email"

    to: list[str] = Field(min_length=1, max_length=100)
    cc: list[str] = Field(default_factory=list, max_length=100)
    bcc: list[str] = Field(default_factory=list, max_length=100)
    subject: str = Field(min_length=1, max_length=900)
    thread_id: str | None = Field(default=None, max_length=200, pattern=r"^[A-Za-z0-9_-]+$")
    in_reply_to: str | None = Field(default=None, max_length=900)
    attachments: list[str] = Field(default_factory=list, max_length=20)

    @field_validator("to", "cc", "bcc", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("to", "cc", "bcc")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        return [normalize_address(item) for item in value]

    @field_validator("subject", "in_reply_to")
    @classmethod
    def _single_line(cls, value: str | None) -> str | None:
        return None if value is None else one_line(value)

    def files(self) -> list[str]:
        return list(self.attachments)

    def recipients(self) -> list[str]:
        return [*self.to, *self.cc, *self.bcc]

    def target(self) -> str:
        return self.to[0]


class PublishPost(ActionParams):
    ACTION: ClassVar[str] = "publish_post"
    KIND: ClassVar[Kind] = "social_media"

    platform: str = Field(pattern=r"^[a-z][a-z0-9_]{1,31}$")
    media: list[str] = Field(default_factory=list, max_length=10)

    def files(self) -> list[str]:
        return list(self.media)

    def target(self) -> str:
        return self.platform


class RegisterPayment(ActionParams):
    ACTION: ClassVar[str] = "register_payment"
    KIND: ClassVar[Kind] = "payments"

    amount: Decimal = Field(gt=0, max_digits=14, decimal_places=2)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    payee: str = Field(min_length=1, max_length=200)
    payment_kind: PaymentKind = "bank_transfer"
    invoice: str | None = Field(default=None, max_length=200)

    @field_validator("amount", mode="before")
    @classmethod
    def _no_float_drift(cls, value: Any) -> Any:
        return str(value) if isinstance(value, float) else value

    @field_validator("payee", "invoice")
    @classmethod
    def _single_line(cls, value: str | None) -> str | None:
        return None if value is None else one_line(value)

    def target(self) -> str:
        return self.payee


ACTIONS: dict[str, type[ActionParams]] = {
    model.ACTION: model for model in (SendEmail, PublishPost, RegisterPayment)
}


def action_model(action: str) -> type[ActionParams]:
    """The parameter model of ``action``; KeyError for an action the product does not know."""
    return ACTIONS[action]


def payload_sha256(
    action: str, kind: str, params: ActionParams, payload: str, attachments: Sequence[str] = ()
) -> str:
    """Hash of everything that decides what the action does (not who claimed it or when).

    ``attachments`` are the fingerprints of attached files taken when the request was made.
    """
    fields: dict[str, Any] = {
        "action": action,
        "kind": kind,
        "params": params.model_dump(mode="json"),
        "payload": payload.strip("\n"),  # as a request file keeps it: no outer blank lines
    }
    if attachments:
        fields["attachments"] = list(attachments)
    canonical = json.dumps(
        fields,
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotency_key(request_id: str, payload_hash: str) -> str:
    """The one key an action is performed under: same request and payload, same key."""
    return hashlib.sha256(f"{request_id}\n{payload_hash}".encode()).hexdigest()[:32]
