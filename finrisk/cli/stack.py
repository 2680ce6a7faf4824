"""`finrisk stack up|down|status`: the local services, on 127.0.0.1."""

from __future__ import annotations

import argparse
import json

from finrisk.stack import SERVICE_TYPES, Stack


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
            help=f"any of {', '.join(SERVICE_TYPES)} (default: all)",
        )
        sub.add_argument("--json", action="store_true", help="print JSON")
        sub.set_defaults(handler=handler)


def _up(args: argparse.Namespace) -> int:
    stack = Stack()
    for service in stack.select(args.services):
        outcome = "started" if service.up() else "already running"
        if not args.json:
            print(f"{service.name:<9} {outcome:<15}  {service.address}")
    if args.json:
        _print_status(stack, args)
    return 0


def _down(args: argparse.Namespace) -> int:
    for name, stopped in Stack().down(args.services).items():
        if not args.json:
            print(f"{name:<9} {'stopped' if stopped else 'was not running'}")
    return 0


def _status(args: argparse.Namespace) -> int:
    stack = Stack()
    _print_status(stack, args)
    return 0 if all(s.state == "running" for s in stack.status(args.services)) else 1


def _smoke(args: argparse.Namespace) -> int:
    from finrisk.stack.smoke import run_all

    stack = Stack()
    stack.up()
    print(json.dumps(run_all(stack.settings), indent=2, default=str))
    return 0


def _print_status(stack: Stack, args: argparse.Namespace) -> None:
    statuses = stack.status(args.services)
    if args.json:
        print(json.dumps([s.as_dict() for s in statuses], indent=2))
        return
    for s in statuses:
        pid = str(s.pid) if s.pid else "-"
        print(f"{s.name:<9} {s.state:<9} pid {pid:<8} {s.address:<24} log {s.log}")
