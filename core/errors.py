"""One small vocabulary of exceptions.

Every error says what went wrong and what to do next, so a person (or the model
reading a tool error) can act on it without reading a traceback.
"""

from __future__ import annotations


class AIEmployeeError(Exception):
    """Base of every error the product raises on purpose."""

    def __init__(self, what: str, next_step: str = "") -> None:
        self.what = what
        self.next_step = next_step
        hint = next_step[:1].upper() + next_step[1:]
        super().__init__(f"{what}. {hint}" if hint else what)


class ConfigError(AIEmployeeError):
    """A setting is missing or invalid; raised at start, before any work."""


class VaultError(AIEmployeeError):
    """Something about the vault or a file in it."""


class UnsafePathError(VaultError):
    """A path from outside would leave the vault or reach something it must not."""


class TaskFileError(VaultError):
    """A task file cannot be read as a task; the file is left untouched."""


class TaskNotFoundError(VaultError):
    """The task is not where the caller said it is."""


class AlreadyClaimedError(VaultError):
    """Another worker moved the task first."""


class TargetExistsError(VaultError):
    """A move would overwrite an existing file; moves never overwrite."""


class AuditError(AIEmployeeError):
    """The audit trail cannot be written or read."""


class AuditTamperedError(AuditError):
    """The audit trail does not verify (edited, deleted, reordered or truncated)."""


class ServiceError(AIEmployeeError):
    """An outside service failed or is being held off."""


class CircuitOpenError(ServiceError):
    """The circuit breaker for a service is open; calls are refused until it cools down."""


class NotRepeatableError(AIEmployeeError):
    """Retry was asked for an operation not marked safe to repeat."""


class PolicyError(ConfigError):
    """The handbook's policy block is missing or malformed; nothing runs until it is fixed."""


class PolicyDeniedError(AIEmployeeError):
    """The handbook denies this action outright; no approval can allow it."""


class RequestError(VaultError):
    """An approval request is malformed, in the wrong place, or fails validation."""


class ActionRefusedError(ServiceError):
    """The service refused the action and says nothing was done (safe to report as failed)."""


class ZoneError(ConfigError):
    """This zone may not do that (the cloud zone never sends, posts or pays)."""


class ExecutorBusyError(VaultError):
    """Another approval executor holds this vault; it will run what is approved."""
