"""The wire trace taps the serial transport: every byte, both directions, in order."""

from __future__ import annotations

from pathlib import Path

from toolkit.transport import SerialTransport, trace


def _rows(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines() if not line.startswith("#")]


def test_both_directions_of_a_binary_exchange_are_traced(tmp_path: Path) -> None:
    path = tmp_path / "wire.trace"
    trace.start(path)
    try:
        with SerialTransport("loop://") as port:
            block = b"\x01\x01\xfe" + bytes(range(20))  # an XMODEM-like header and 20 bytes
            port.write(block)
            got = b""
            while len(got) < len(block):
                got += port.read(64, timeout=1.0)
    finally:
        trace.stop()
    rows = _rows(path)
    sent = [r for r in rows if r[2] == ">"]
    received = [r for r in rows if r[2] == "<"]
    assert sent and received and all(r[1] == "loop://" for r in rows)
    assert sent[0][3:6] == ["01", "01", "fe"]
    assert len(sent) == 2  # 23 bytes: one full line of 16 and one of 7, same time stamp
    assert sent[0][0] == sent[1][0]
    hex_in = [h for r in received for h in r[3:] if len(h) == 2]
    assert "".join(hex_in).startswith(block.hex())


def test_nothing_is_written_when_tracing_is_off(tmp_path: Path) -> None:
    assert trace.active() is None
    with SerialTransport("loop://") as port:
        port.write(b"x")
        assert port.read(1, timeout=1.0) == b"x"
    trace.record("loop://", trace.TX, b"ignored")  # no sink: a no-op
    assert list(tmp_path.iterdir()) == []
