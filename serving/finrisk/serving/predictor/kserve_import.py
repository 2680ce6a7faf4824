"""Import kserve without letting it read our command line.

`kserve.model_server` parses sys.argv when first imported (--http_port, --workers, ...), and
argparse's prefix matching would let it take `finrisk serve` flags as its own. Every predictor
module imports kserve through here, with sys.argv hidden for the duration.
"""

from __future__ import annotations

import sys
from types import ModuleType


def import_kserve() -> ModuleType:
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        import kserve
        import kserve.errors
        import kserve.model_repository
        import kserve.model_server
        import kserve.protocol.dataplane
        import kserve.protocol.model_repository_extension
        import kserve.protocol.rest.server
        import kserve.protocol.rest.v1_endpoints
        import kserve.protocol.rest.v2_endpoints
    finally:
        sys.argv = saved
    return kserve


kserve = import_kserve()
