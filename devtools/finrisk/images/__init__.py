"""finrisk's container images: what goes into each (spec), the tools that build and run them
(one abstract base, one module per tool) and the cached build behind `make images`."""

from __future__ import annotations

from finrisk.images.build import Built, build_images, image_ref
from finrisk.images.detect import find_tool
from finrisk.images.spec import IMAGES, ImageSpec
from finrisk.images.tool import ImageTool

__all__ = ["IMAGES", "Built", "ImageSpec", "ImageTool", "build_images", "find_tool", "image_ref"]
