"""Bad input gets a clear error and loses nothing: bad images are refused before a single byte
reaches the console, a wrong or busy port and a silent board fail with the console tail shown,
and a chunk U-Boot keeps rejecting stops the flash before anything is written. No QEMU here."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from toolkit import errors
from toolkit.events import NullReporter
from toolkit.journeys import flash_serial
from toolkit.journeys.flash import FlashOptions, flash
from toolkit.journeys.flash_serial_plan import plan_chunks
from toolkit.record import Journal
from toolkit.targets import Target

CORPUS = Path(__file__).resolve().parents[2] / "firmware" / "trust" / "bad_images"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text())


class ConsoleServer:
    """A ``socket://`` serial line that records every byte it gets and says ``chatter``
    (a board stuck in Linux, or a wrong baud rate) every ``every`` seconds."""

    def __init__(self, chatter: bytes = b"", every: float = 0.05) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.listener.getsockname()[1]}"
        self.received = bytearray()
        self.connections = 0
        self.chatter, self.every = chatter, every
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.listener.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.settimeout(self.every)
            with conn:
                while not self.stop.is_set():
                    try:
                        data = conn.recv(4096)
                        if not data:
                            break
                        self.received += data
                    except TimeoutError:
                        pass
                    except OSError:
                        break
                    if self.chatter:
                        try:
                            conn.sendall(self.chatter)
                        except OSError:
                            break

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


@pytest.fixture
def line() -> Iterator[ConsoleServer]:
    server = ConsoleServer()
    yield server
    server.close()


def _target(url: str, board: str = "es-virt") -> Target:
    # A power "command" that succeeds: the journey may reset the board without asking anyone.
    return Target(
        name="bench-1", board=board, serial_url=url, power={"kind": "command", "reset": "true"}
    )


@pytest.fixture
def corpus_trust(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust the corpus key; add ``es-virt-tiny`` (es-virt with 1 KiB slots), as H4's tests do."""
    from toolkit import paths
    from toolkit.firmware import keys
    from toolkit.firmware.signify import PublicKey

    keys.trust_key(PublicKey.from_bytes((CORPUS / "corpus.pub").read_bytes()), name="corpus")
    real = (paths.REPO_ROOT / "firmware" / "boards" / "es-virt.toml").read_text()
    boards = tmp_path / "boards"
    boards.mkdir()
    (boards / "es-virt.toml").write_text(real)
    tiny = re.sub(r'(?m)^id = "es-virt"', 'id = "es-virt-tiny"', real)
    (boards / "es-virt-tiny.toml").write_text(re.sub(r"(?m)^blocks = \d+", "blocks = 2", tiny))
    monkeypatch.setenv("ROUTERKIT_BOARDS", str(boards))


def _options(args: list[str], **extra: Any) -> FlashOptions:
    running = args[args.index("--running-version") + 1] if "--running-version" in args else None
    return FlashOptions(path="ymodem", running_version=running, **extra)


@pytest.mark.parametrize(
    "entry", [e for e in MANIFEST if e["error_class"]], ids=lambda e: e["file"]
)
def test_bad_image_is_refused_before_any_byte_reaches_the_console(
    entry, corpus_trust, line
) -> None:
    with pytest.raises(errors.RouterkitError) as info:
        flash(CORPUS / entry["file"], _target(line.url, entry["board"]), _options(entry["args"]))
    assert type(info.value).__name__ == entry["error_class"]
    assert info.value.exit_code == entry["exit_code"]
    assert entry["message"] in str(info.value)
    time.sleep(0.05)
    assert line.connections == 0 and line.received == b""  # the port was not even opened


def test_the_good_corpus_image_does_reach_the_console(corpus_trust, line) -> None:
    """The control: the same harness sees bytes when the image passes the checks."""
    with pytest.raises(errors.DeviceTimeout):
        flash(CORPUS / "good.img", _target(line.url), _options([], timeout=0.5))
    assert line.connections == 1 and line.received  # interrupt keys went out


def test_versions_recorded_for_other_devices_do_not_refuse_the_image(corpus_trust, line) -> None:
    """Regression: a second `make demo` was refused because an older session (another device,
    or this one before `sample up --fresh`) had recorded a newer running version. Only the
    device itself (read from its slot before any write) or the caller may say what it runs."""
    old = Journal.create("verify", board="es-virt", target="some-other-sample")
    old.append("running_version", version="99.0.0", slot="A")
    with pytest.raises(errors.DeviceTimeout):  # it went on to talk to the console
        flash(CORPUS / "good.img", _target(line.url), FlashOptions(path="ymodem", timeout=0.5))
    assert line.connections == 1 and line.received


def test_wrong_port_is_a_port_error_with_a_hint(images) -> None:
    free = socket.create_server(("127.0.0.1", 0))
    url = f"socket://127.0.0.1:{free.getsockname()[1]}"
    free.close()  # nothing listens there now
    with pytest.raises(errors.PortError, match="cannot open serial port") as info:
        flash(images["1.1.0"], _target(url), FlashOptions(allow_downgrade=True))
    assert info.value.exit_code == 21 and info.value.hint


def test_busy_port_is_a_port_error_naming_the_cause(images) -> None:
    import serial

    master, slave = os.openpty()
    holder = serial.Serial(os.ttyname(slave), exclusive=True)  # another program has the port
    try:
        with pytest.raises(errors.PortError) as info:
            flash(images["1.1.0"], _target(os.ttyname(slave)), FlashOptions(allow_downgrade=True))
        assert "in use" in (info.value.hint or "")
    finally:
        holder.close()
        os.close(master)
        os.close(slave)


def test_no_uboot_prompt_times_out_showing_the_last_console_lines(images) -> None:
    # A board that already runs Linux (or a wrong baud rate): text, but never "=> ".
    server = ConsoleServer(chatter=b"[   12.345678] eth0: link up\r\nrouter login: ")
    try:
        with pytest.raises(errors.DeviceTimeout, match=r"did not answer within 1\.5 s") as info:
            flash(
                images["1.1.0"],
                _target(server.url),
                FlashOptions(allow_downgrade=True, timeout=1.5),
            )
    finally:
        server.close()
    assert info.value.exit_code == 22
    assert "router login:" in (info.value.last_output or "")
    journal = Journal.latest(kind="flash")
    assert (
        journal is not None and (journal.last("flash") or {}).get("error_class") == "DeviceTimeout"
    )


class _RejectingDevice:
    """A U-Boot whose crc32 of RAM never matches (every load arrives damaged)."""

    load_addr = 0x50000000

    def __init__(self) -> None:
        self.writes = 0

    def crc32_is(self, addr: int, length: int, expected: int) -> bool:
        return False

    def write_slot(self, *args: Any) -> None:
        self.writes += 1


class _IncompleteLoader:
    path = "ymodem"
    detail = "fake"

    def load(self, data: bytes, name: str, progress: Any) -> int:
        raise errors.TransferError(
            "U-Boot's loady reports 1024 bytes received (Transfer incomplete)"
        )

    def close(self) -> None:
        pass


@pytest.mark.parametrize("failure", ["transfer incomplete", "crc mismatch"])
def test_a_chunk_that_keeps_failing_stops_before_any_write(failure: str) -> None:
    from toolkit.boards import load_board

    data = os.urandom(4096)
    journal = Journal.create("flash", board="es-virt", target="bench-1")
    run = flash_serial._Run(Path("x"), _target("socket://unused:1"), FlashOptions(), NullReporter(), journal,
                            load_board("es-virt"), data=data, sha256="0" * 64)  # fmt: skip
    device = _RejectingDevice()
    run.device = device  # type: ignore[assignment]
    chunk = plan_chunks(data, 4096, 512)[0]
    loader = _IncompleteLoader() if failure == "transfer incomplete" else _GoodLoader()
    # Failed loads stop sooner (a line that noisy does not get better); bad crc32s get every try.
    tries = (
        flash_serial.LOAD_FAILURES
        if failure == "transfer incomplete"
        else flash_serial.CHUNK_ATTEMPTS
    )
    with pytest.raises(
        errors.TransferError, match=f"failed {tries} times; nothing was switched"
    ) as info:
        flash_serial.write_chunk(run, loader, run.board.slot("B"), chunk, len(data))  # type: ignore[arg-type]
    assert device.writes == 0  # nothing reached the slot
    assert len(journal.events("chunk_retry")) == tries
    assert not journal.events("chunk")
    assert info.value.hint and "rerun" in info.value.hint


class _GoodLoader(_IncompleteLoader):
    def load(self, data: bytes, name: str, progress: Any) -> int:
        return len(data)
