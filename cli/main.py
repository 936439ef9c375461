"""The ``ai-employee`` command: argument parsing and dispatch; the work lives in core/."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from cli import auth, briefing, commands, demo, doctor, ralph
from core.errors import AIEmployeeError

Handler = Callable[[argparse.Namespace], int]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ai-employee",
        description="A careful business assistant: tasks in a vault, actions only with approval.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = sub.add_parser("init", help="create a vault (default: VAULT_PATH)")
    init.add_argument("path", nargs="?", type=Path, help="folder for the new vault")
    init.set_defaults(handler=commands.cmd_init)

    status = sub.add_parser("status", help="counts, waiting approvals, claims and health")
    status.add_argument("--json", action="store_true", help="stable JSON for scripts")
    status.set_defaults(handler=commands.cmd_status)

    approve = sub.add_parser("approve", help="approve a request in Pending_Approval/")
    approve.add_argument("file", help="the request, relative to the vault or absolute")
    approve.set_defaults(handler=commands.cmd_approve)

    reject = sub.add_parser("reject", help="reject a request in Pending_Approval/")
    reject.add_argument("file", help="the request, relative to the vault or absolute")
    reject.add_argument("--reason", default="", help="why, kept in the file")
    reject.set_defaults(handler=commands.cmd_reject)

    run = sub.add_parser("run", help="run a daemon (loops until stopped, or one pass)")
    run.add_argument("daemon", choices=sorted(commands.DAEMONS), help="which daemon")
    run.add_argument("--once", action="store_true", help="one pass, then exit")
    run.add_argument(
        "--interval", type=float, help="seconds between passes (default: the daemon's own)"
    )
    run.set_defaults(handler=commands.cmd_run)

    doctor_cmd = sub.add_parser("doctor", help="check settings, vault, policy, audit and sign-ins")
    doctor_cmd.add_argument("--json", action="store_true", help="stable JSON for scripts")
    doctor_cmd.set_defaults(handler=doctor.cmd_doctor)

    demo_cmd = sub.add_parser("demo", help="run the main job once on a throwaway vault")
    demo_cmd.add_argument("--vault", type=Path, help="use this folder instead of a temp one")
    demo_cmd.add_argument(
        "--gmail",
        metavar="URL",
        help="run the mail path instead, live against a Gmail stand-in at this loopback URL "
        "(make demo starts one)",
    )
    demo_cmd.add_argument(
        "--live",
        action="store_true",
        help="send for real to the stand-in instead of a dry run",
    )
    demo_cmd.set_defaults(handler=demo.cmd_demo)

    auth_cmd = sub.add_parser("auth", help="sign in to a service (token kept in SECRETS_DIR)")
    auth_cmd.add_argument("service", choices=["gmail"], help="which service")
    auth_cmd.add_argument(
        "--client-secrets",
        type=Path,
        metavar="FILE",
        help=f"the Desktop app client JSON from Google Cloud console "
        f"(default: SECRETS_DIR/{auth.CLIENT_SECRETS_FILE})",
    )
    how = auth_cmd.add_mutually_exclusive_group()
    how.add_argument(
        "--console", action="store_true", help="headless: paste the address the browser reaches"
    )
    how.add_argument(
        "--no-browser", action="store_true", help="print the address instead of opening a browser"
    )
    auth_cmd.add_argument(
        "--port",
        type=auth.port_number,
        default=0,
        help="loopback port for Google's answer (default: any free one; "
        f"with --console: {auth.CONSOLE_PORT})",
    )
    auth_cmd.set_defaults(handler=auth.cmd_auth)
    briefing_cmd = sub.add_parser("briefing", help="write the Monday CEO briefing's data pass")
    briefing_cmd.add_argument(
        "--date", type=briefing.date_arg, help="the briefing's date, YYYY-MM-DD (default: today)"
    )
    briefing_cmd.set_defaults(handler=briefing.cmd_briefing)

    ralph_cmd = sub.add_parser("ralph", help="keep Claude Code working until a task is done")
    ralph_sub = ralph_cmd.add_subparsers(dest="ralph_command", required=True, metavar="ACTION")
    start = ralph_sub.add_parser("start", help="start a loop on one task")
    start.add_argument("prompt", help="what Claude Code is asked to do, again at each stop")
    start.add_argument("--task", required=True, help="the task file; the loop ends in Done/")
    start.add_argument(
        "--max-iterations", type=int, default=ralph.DEFAULT_MAX_ITERATIONS, help="at most"
    )
    start.add_argument("--promise", help="a phrase that ends the loop when Claude says it")
    ralph_sub.add_parser("status", help="the loop's state")
    ralph_sub.add_parser("cancel", help="end the loop now")
    ralph_cmd.set_defaults(handler=ralph.cmd_ralph)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except AIEmployeeError as exc:
        print(f"ai-employee: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        print(
            f"ai-employee: {exc.strerror or exc}{where}. Check the path and its permissions, "
            "then run the command again; nothing was left half-written",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print("ai-employee: interrupted; nothing was left half-written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
