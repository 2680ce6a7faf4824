"""The image every finrisk component runs in (built from components/Dockerfile).

Override with FINRISK_COMPONENT_IMAGE before the components are imported (the CLI's
`--image` flag does that); the image is part of the compiled spec, so it changes the
pipeline version name.
"""

import os

from finrisk.version import __version__

IMAGE_ENV = "FINRISK_COMPONENT_IMAGE"
DEFAULT_IMAGE = f"ghcr.io/finrisk/finrisk-components:{__version__}"
COMPONENT_IMAGE = os.environ.get(IMAGE_ENV) or DEFAULT_IMAGE
