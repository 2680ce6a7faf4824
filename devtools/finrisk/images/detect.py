"""Which image tool this machine has."""

from __future__ import annotations

from finrisk.errors import FinriskError
from finrisk.images.buildah import Buildah
from finrisk.images.docker_cli import Docker, Podman
from finrisk.images.tool import ImageTool


def tool_types() -> dict[str, type[ImageTool]]:
    """Preference order: a Docker daemon, then buildah (runs here without one), then podman."""
    return {tool.name: tool for tool in (Docker, Buildah, Podman)}


def find_tool(name: str | None = None) -> ImageTool:
    """The named tool, or the first that works; an error naming what to install otherwise."""
    types = tool_types()
    if name is not None:
        if name not in types:
            raise FinriskError(f"unknown image tool {name!r}: use one of {', '.join(types)}")
        if not types[name].works():
            raise FinriskError(f"the image tool {name} is not installed or cannot build here")
        return types[name]()
    for tool in types.values():
        if tool.works():
            return tool()
    raise FinriskError(
        "no image tool works here: install docker (with a running daemon), buildah or podman "
        "(`make images` installs Debian's buildah itself)"
    )
