"""An address where nothing answers, for tests of a store that is down.

A port picked free and released may be reused before the test connects, and on Linux a
connection from 127.0.0.1 to an ephemeral port can even pick that same port as its own source
and connect to itself (a TCP self-connect: the client then reads its own request and hangs).
Holding the port bound, without listening, makes every connection to it refused at once."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def closed_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])
