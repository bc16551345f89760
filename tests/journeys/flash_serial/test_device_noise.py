"""The flash's U-Boot commands on a noisy line, against the fake U-Boot: a garbled echo is never
executed, a garbled status is asked again, a failed load falls back to small blocks."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

import pytest

from toolkit.boards import load_board
from toolkit.errors import TransferError
from toolkit.journeys.flash_serial_device import Device
from toolkit.protocol.console import Console
from toolkit.target.uboot import UBoot
from toolkit.testing.fake import FakeUBoot


@dataclass
class NoisyUBoot(FakeUBoot):
    """Echoes the character typed at index ``bad_echo_at`` as ``X`` (once), and garbles the
    first ``bad_status`` status markers (``rk-rc=...``) it prints."""

    bad_echo_at: int = -1  # index of the typed character whose echo is garbled (once)
    bad_status: int = 0

    def _type(self, char: str) -> None:
        self.bad_echo_at -= 1
        if self.bad_echo_at == -1 and char not in "\r\n\x03":
            self._line += char  # U-Boot got the right character; the echo flips on the way back
            self._rx += b"X"
            return
        super()._type(char)

    def _command(self, argv: list[str]) -> tuple[str, int]:
        if argv[0] == "echo" and argv[1:2] and argv[1].startswith("rk-rc=") and self.bad_status:
            self.bad_status -= 1
            return argv[1].replace("rk-rc", "rk-rk", 1) + "\r\n", 0  # one flipped bit
        return super()._command(argv)


def _device(fake: FakeUBoot) -> Device:
    board = load_board("es-virt")
    return Device(UBoot(Console(fake, name="fake"), board), board)


def test_a_line_whose_echo_comes_back_wrong_is_never_run() -> None:
    fake = NoisyUBoot(at_prompt=True, bad_echo_at=20)
    device = _device(fake)
    assert device.run("setenv rk_x 1") == ""
    assert fake.env["rk_x"] == "1"
    assert sum("setenv rk_x 1" in line for line in fake.lines) == 1  # the garbled try: Ctrl-C


@pytest.mark.timeout(20)  # without the prompt fallback this waits out the 60 s command timeout
def test_a_garbled_status_runs_the_idempotent_command_again() -> None:
    fake = NoisyUBoot(at_prompt=True, bad_status=1)
    device = _device(fake)
    fake.memory[0x50000000] = b"routerkit"
    assert device.crc32(0x50000000, 9) == zlib.crc32(b"routerkit")
    assert sum("crc32 0x50000000 0x9" in line for line in fake.lines) == 2


def test_a_failed_load_switches_the_session_to_128_byte_blocks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from toolkit.protocol import xymodem

    sizes: list[int] = []

    def failing_sender(link: object, data: bytes, **kw: object) -> xymodem.TransferStats:
        sizes.append(int(kw["block_size"]))  # type: ignore[call-overload]
        raise TransferError("block 3 was not acknowledged after 10 retries")

    monkeypatch.setattr(xymodem, "send_ymodem", failing_sender)
    fake = FakeUBoot(
        at_prompt=True,
        commands={"loady": lambda argv: ("## Ready for binary (ymodem) download\n", 0)},
    )
    device = _device(fake)
    for _ in range(2):
        with pytest.raises(TransferError):
            device.load_serial(b"x" * 4096, device.load_addr, "ymodem", None)
    assert sizes == [1024, 128]


@dataclass
class ShortAnswersUBoot(FakeUBoot):
    """Like a line so noisy that only ``md.b`` answers of up to ``clean_up_to`` bytes come
    through whole: longer dumps arrive with one hex digit flipped."""

    clean_up_to: int = 64

    def _command(self, argv: list[str]) -> tuple[str, int]:
        if argv[0] != "md.b":
            return super()._command(argv)
        addr, length = int(argv[1], 16), int(argv[2], 16)
        data = self._ram(addr, length)
        rows = [
            f"{addr + at:08x}: {' '.join(f'{b:02x}' for b in data[at : at + 16])}    ................"
            for at in range(0, length, 16)
        ]
        if length > self.clean_up_to:
            rows[0] = rows[0][:10] + ("0" if rows[0][10] != "0" else "1") + rows[0][11:]
        return "\r\n".join(rows) + "\r\n", 0


def test_a_dump_that_never_comes_through_whole_is_read_in_shorter_pieces() -> None:
    payload = bytes(range(256)) * 2
    fake = ShortAnswersUBoot(at_prompt=True, memory={0x50000000: payload})
    device = _device(fake)
    assert device.dump(0x50000000, len(payload)) == payload
    sizes = {int(m, 16) for line in fake.lines for m in re.findall(r"md\.b \S+ (\S+);", line)}
    assert 256 in sizes and min(sizes) <= 64  # tried whole, then halved until answers were clean
