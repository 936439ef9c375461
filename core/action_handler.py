"""What the executor calls to act at a service, and what one of its passes reports."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from core.approvals import ApprovalRequest


class ActionHandler(ABC):
    """Performs one action at its service. Registered per action name."""

    action: ClassVar[str]
    # True if ``lookup`` can tell, after a crash, whether a call under a key happened.
    can_reconcile: ClassVar[bool] = False

    @abstractmethod
    def perform(self, request: ApprovalRequest, key: str) -> dict[str, Any]:
        """Do it under ``key``; raise ActionRefusedError when the service surely did nothing."""

    def lookup(self, request: ApprovalRequest, key: str) -> dict[str, Any] | None:
        """The result of an earlier call under ``key``, or None if the service has none."""
        raise NotImplementedError(f"{self.action} cannot be reconciled")


class PassReport(BaseModel):
    done: list[str] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)
    rejected: list[str] = Field(default_factory=list)
    waiting: dict[str, str] = Field(default_factory=dict)
