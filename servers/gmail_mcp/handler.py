"""The approval executor's ``send_email`` handler: sends once, and finds a send again by its key."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

from core.action_handler import ActionHandler
from core.actions import SendEmail
from core.approvals import MAX_ATTACHMENT_BYTES, ApprovalRequest
from core.config import Settings
from core.errors import ActionRefusedError, VaultError
from core.tasks import read_bytes_safely
from core.vault import Vault
from servers.gmail_mcp.gmail import GmailClient
from servers.gmail_mcp.mail import OutgoingFile, message_id_for


def vault_files(vault: Vault, paths: Sequence[str]) -> list[OutgoingFile]:
    """Files to attach, read from the vault through its confinement; nothing sent on trouble."""
    files = []
    try:
        for rel in paths:
            data = read_bytes_safely(vault.resolve(rel), limit=MAX_ATTACHMENT_BYTES)
            files.append(OutgoingFile(PurePosixPath(rel).name, data))
    except VaultError as exc:
        raise ActionRefusedError(f"attachment problem: {exc.what}; nothing was sent", "") from None
    return files


def digests(files: Sequence[OutgoingFile]) -> list[str]:
    return [f"sha256:{hashlib.sha256(f.data).hexdigest()}" for f in files]


class SendEmailHandler(ActionHandler):
    """Sends an approved email with a Message-ID derived from the idempotency key, so after a
    crash ``lookup`` finds it in Sent instead of sending it twice."""

    action = "send_email"
    can_reconcile = True

    def __init__(self, settings: Settings, client: GmailClient | None = None) -> None:
        self.settings = settings
        self.client = client or GmailClient(settings)
        self.vault = Vault(settings.vault_path)

    def _params(self, request: ApprovalRequest) -> SendEmail:
        if not isinstance(request.params, SendEmail):
            raise ActionRefusedError(f"{request.file} is not a send_email request", "")
        return request.params

    def _attachments(self, request: ApprovalRequest, params: SendEmail) -> list[OutgoingFile]:
        """The approved files, checked again against the fingerprints taken at request time."""
        files = vault_files(self.vault, params.attachments)
        if digests(files) != list(request.attachments_sha256):
            raise ActionRefusedError(
                "an attached file is not the one that was approved; nothing was sent",
                "ask for a new request",
            )
        return files

    def perform(self, request: ApprovalRequest, key: str) -> dict[str, Any]:
        if self.settings.zone != "local":
            raise ActionRefusedError(
                f"the {self.settings.zone} zone never sends email; nothing was sent",
                "approve it on the owner's machine (ZONE=local)",
            )
        params = self._params(request)
        files = self._attachments(request, params)
        return self.client.send(params, request.payload, key, attachments=files)

    def lookup(self, request: ApprovalRequest, key: str) -> dict[str, Any] | None:
        self._params(request)
        return self.client.find_sent(message_id_for(key))
