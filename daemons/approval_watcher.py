"""Runs what the CEO approved (local zone only): ``ai-employee run approval_watcher [--once]``.

A thin loop around :class:`core.executor.Executor`: one pass every few seconds,
a clear line for every change, and a clean stop on SIGTERM or Ctrl-C after the
current pass. A malformed handbook stops execution until it is fixed (the loop
keeps checking); with ``--once`` it is an error exit.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence

from core.action_handler import ActionHandler, PassReport
from core.config import Settings
from core.errors import PolicyError
from core.executor import Executor
from core.policy import load_policy
from core.vault import open_vault
from daemons.loop import daemon_main, daemon_parser, run_loop, stop_on_signals

DEFAULT_INTERVAL = 10.0


def available_handlers(settings: Settings) -> list[ActionHandler]:
    """Handlers whose services are set up on this machine (imported only when they are)."""
    if settings.zone != "local":
        return []
    from servers.gmail_mcp.auth import token_path

    handlers: list[ActionHandler] = []
    if token_path(settings).is_file():  # signed in to Gmail (`ai-employee auth gmail`)
        from servers.gmail_mcp.handler import SendEmailHandler

        handlers.append(SendEmailHandler(settings))
    return handlers


def print_report(report: PassReport) -> None:
    for label, files in (("done", report.done), ("failed", report.failed)):
        for file in files:
            print(f"{label}: {file}", flush=True)
    for file in report.rejected:
        print(f"expired: {file}", flush=True)
    for file, why in report.waiting.items():
        print(f"waiting: {file}: {why}", flush=True)


def run(
    settings: Settings,
    *,
    once: bool,
    interval: float = DEFAULT_INTERVAL,
    handlers: Iterable[ActionHandler] | None = None,
) -> int:
    vault = open_vault(settings, actor="approval_watcher")
    load_policy(vault.root)  # a malformed handbook is an error at start, not a silent loop
    chosen = available_handlers(settings) if handlers is None else list(handlers)
    executor = Executor(vault, zone=settings.zone, dry_run=settings.dry_run, handlers=chosen)
    mode = "DRY RUN: no outside calls" if settings.dry_run else "LIVE"
    stop = stop_on_signals(once)
    print(f"approval_watcher: {vault.root} ({mode})", flush=True)

    def one_pass() -> None:
        try:
            print_report(executor.run_once())
        except PolicyError as exc:
            why = f"nothing runs until the handbook is fixed: {exc.what}"
            raise PolicyError(why, exc.next_step) from None

    return run_loop(
        "approval_watcher",
        vault,
        one_pass,
        zone=settings.zone,
        once=once,
        interval=interval,
        stop=stop,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = daemon_parser("approval_watcher", __doc__, DEFAULT_INTERVAL)
    return daemon_main(
        "approval_watcher",
        parser,
        lambda settings, args: run(settings, once=args.once, interval=max(args.interval, 0.5)),
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
