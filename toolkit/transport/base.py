"""The transport contract: bytes in, bytes out, with a deadline on every read.

A transport knows nothing about prompts, lines or protocols; it moves bytes. Everything above
it (``toolkit.protocol.console``, XMODEM/YMODEM, the U-Boot and Linux dialogues) is built once
on these two primitives, so the same code runs over a USB-serial adapter, a QEMU chardev socket,
a remote bench through ser2net/RFC2217, or the scripted fake in :mod:`toolkit.testing.fake`.

The one rule that matters for speed: ``read`` returns *whatever is available* as soon as at
least one byte has arrived. It never waits to fill ``max_bytes``. A read that waits for a count
(or sleeps a fixed 50 ms) holds every XMODEM ACK hostage and costs an order of magnitude in
throughput.
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self, runtime_checkable


@runtime_checkable
class Transport(Protocol):
    """Two primitives (``read``, ``write``) plus ``close`` and context-manager support."""

    def read(self, max_bytes: int, timeout: float) -> bytes:
        """Return 1..max_bytes bytes as soon as any arrive, or ``b""`` after ``timeout`` s.

        ``timeout <= 0`` polls without blocking. Raises :class:`toolkit.errors.PortError` if the
        link is gone (port unplugged, socket closed by the other end).
        """
        ...

    def write(self, data: bytes) -> None:
        """Send all of ``data``. Raises :class:`toolkit.errors.PortError` if the link is gone."""
        ...

    def close(self) -> None:
        """Release the port. Idempotent."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class TransportBase:
    """Convenience base class: context-manager support on top of ``close()``."""

    def close(self) -> None:  # pragma: no cover - overridden
        """Release the port. Idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
