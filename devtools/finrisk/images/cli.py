"""`finrisk images build|push`: the component and predictor images (`make images`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from finrisk.cli.settings_flags import add_flags, given, overlaid
from finrisk.settings import ImagesSettings, Settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("images", help="build and push the container images")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for action, text in (
        ("build", "build both images, each only when what goes into it changed"),
        ("push", "build (cached) and push both images to <repo>"),
    ):
        sub = actions.add_parser(action, help=text, description=text)
        add_flags(
            sub,
            ImagesSettings,
            title="settings (each also FINRISK_IMAGES__<NAME> or images: in the FINRISK_CONFIG "
            "file)",
        )
        sub.add_argument(
            "--root", type=Path, default=Path.cwd(), help="the repository (default: here)"
        )
        sub.add_argument("--json", action="store_true", help="print JSON")
        sub.set_defaults(handler=_build, push=action == "push")


def images_settings(args: argparse.Namespace) -> ImagesSettings:
    return overlaid(Settings().images, given(args, ImagesSettings))


def _build(args: argparse.Namespace) -> int:
    from finrisk.images.build import build_images
    from finrisk.images.detect import find_tool

    settings = images_settings(args)
    tool = find_tool(settings.tool)
    built = build_images(tool, settings, args.root.resolve())
    if args.push:
        for image in built:
            tool.push(image.ref)
    if args.json:
        print(json.dumps([{"tool": tool.name, **image.as_dict()} for image in built]))
    else:
        for image in built:
            outcome = "cached" if image.cached else "built"
            print(
                f"{image.ref:<50} {outcome:<6} {image.size_bytes / 1e6:>7.0f} MB "
                f"{image.seconds:>6.1f} s  ({tool.name})"
            )
    return 0
