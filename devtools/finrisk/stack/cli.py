"""`finrisk stack up|down|status`: the local services, on 127.0.0.1."""

from __future__ import annotations

import argparse
import json

from finrisk.stack import SERVICE_TYPES, ServiceStatus, Stack


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("stack", help="start, stop and inspect the local services")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for action, handler, text in (
        ("up", _up, "start the services (idempotent) and wait until healthy"),
        ("down", _down, "end the processes the stack started"),
        ("status", _status, "show each service's state, pid, address and log"),
        ("smoke", _smoke, "start the stack and send one record through each service"),
    ):
        sub = actions.add_parser(action, help=text, description=text)
        sub.add_argument(
            "services",
            nargs="*",
            metavar="SERVICE",
            help=f"any of {', '.join(SERVICE_TYPES)} (default: "
            f"{', '.join(n for n, c in SERVICE_TYPES.items() if c.default)}; down and status: all)",
        )
        sub.add_argument("--json", action="store_true", help="print JSON")
        sub.set_defaults(handler=handler)


def _up(args: argparse.Namespace) -> int:
    selected = Stack().select(args.services or None)
    for service in selected:
        outcome = "started" if service.up() else "already running"
        if not args.json:
            print(f"{service.name:<9} {outcome:<15}  {service.address}")
    if args.json:
        _print_status([service.status() for service in selected], as_json=True)
    return 0


def _down(args: argparse.Namespace) -> int:
    for name, stopped in Stack().down(args.services or None).items():
        if not args.json:
            print(f"{name:<9} {'stopped' if stopped else 'was not running'}")
    return 0


def _status(args: argparse.Namespace) -> int:
    """Exit 0 when every named (default: every default) service runs and nothing is unhealthy."""
    stack = Stack()
    statuses = stack.status(args.services or None)
    _print_status(statuses, as_json=args.json)
    required = {service.name for service in stack.select(args.services or None)}
    ok = all(
        s.state == "running" if s.name in required else s.state != "unhealthy" for s in statuses
    )
    return 0 if ok else 1


def _smoke(args: argparse.Namespace) -> int:
    from finrisk.stack.smoke import run_all

    stack = Stack()
    stack.up()
    print(json.dumps(run_all(stack.settings), indent=2, default=str))
    return 0


def _print_status(statuses: list[ServiceStatus], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps([s.as_dict() for s in statuses], indent=2))
        return
    for s in statuses:
        pid = str(s.pid) if s.pid else "-"
        print(f"{s.name:<9} {s.state:<9} pid {pid:<8} {s.address:<24} log {s.log}")
