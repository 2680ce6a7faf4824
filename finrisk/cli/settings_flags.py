"""Command-line flags derived from a settings model, so that each setting is declared once.

A field of a pydantic model (finrisk.settings) gives the flag --<field-name> with its type,
choices (a Literal), default and description as help; its bounds are checked when the values
are laid over the settings, and an error names the flag. '' stands for None (`--risk-model ''`:
no risk model). Secrets and mappings get no flag: a
command line is visible to every user of the host, and a mapping has no one-word form.
"""

from __future__ import annotations

import argparse
import types
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from finrisk.errors import FinriskError

# The scalar types a flag takes, each with the placeholder its help shows.
_METAVARS: dict[type, str] = {str: "TEXT", int: "N", float: "NUMBER", Path: "PATH"}


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def _unwrapped(annotation: Any) -> Any:
    """The annotation without `| None`."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _flag_kwargs(info: FieldInfo) -> dict[str, Any] | None:
    """argparse keywords for one field, None when it takes no flag."""
    kind = _unwrapped(info.annotation)
    default = None if info.default_factory is not None else info.default
    shown = "" if default is None else f" (default {default})"
    text = (info.description or "") + shown
    if kind is bool:
        return {"action": argparse.BooleanOptionalAction, "help": text}
    if get_origin(kind) is Literal:
        return {"choices": [str(choice) for choice in get_args(kind)], "help": text}
    if kind in _METAVARS:
        return {"type": kind, "metavar": _METAVARS[kind], "help": text}
    return None


def add_flags(
    parser: argparse.ArgumentParser,
    model: type[BaseModel],
    *,
    only: Collection[str] | None = None,
    title: str | None = None,
) -> None:
    """One flag per field of `model` (or of the fields named in `only`), in a group."""
    group = parser.add_argument_group(title) if title else parser
    for name, info in model.model_fields.items():
        if only is not None and name not in only:
            continue
        kwargs = _flag_kwargs(info)
        if kwargs is not None:
            # SUPPRESS: a flag not given leaves no attribute, so it overrides nothing.
            group.add_argument(flag_name(name), dest=name, default=argparse.SUPPRESS, **kwargs)


def given(
    args: argparse.Namespace, model: type[BaseModel], *, only: Collection[str] | None = None
) -> dict[str, Any]:
    """The fields of `model` (those in `only`, as given to add_flags) set by flags on this
    command line, '' meaning None."""
    names = model.model_fields if only is None else only
    values = {name: getattr(args, name) for name in names if hasattr(args, name)}
    return {name: (None if value == "" else value) for name, value in values.items()}


def overlaid(current: BaseModel, overrides: Mapping[str, Any]) -> Any:
    """`current` with `overrides` laid over it and checked; an error names each flag."""
    try:
        return type(current).model_validate({**current.model_dump(), **overrides})
    except ValidationError as exc:
        problems = "; ".join(
            f"{flag_name('_'.join(str(p) for p in err['loc']))}: {err['msg']}"
            for err in exc.errors()
        )
        raise FinriskError(f"invalid settings: {problems}") from None
