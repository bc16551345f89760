"""Serial verify on a noisy console (fake shell): a fwinfo or selftest answer garbled on the
line is read again, never reported as another board or version."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from toolkit.boards import load_board
from toolkit.hostkeys import read_console_host_keys
from toolkit.journeys import verify
from toolkit.protocol.console import Console
from toolkit.record import Journal
from toolkit.target.shell import LinuxShell
from toolkit.targets import Target
from toolkit.testing.fake_shell import FakeShell

FWINFO = {"board": "es-virt", "version": "1.2.0", "running_slot": "A", "active_slot": "A",
          "rk_tries": 0, "slots": {"A": {"ok": True}, "B": {"empty": True}}}  # fmt: skip
SELFTEST = {"status": "ok", "version": "1.2.0"}


def _answers(cmd: str) -> tuple[str, int]:
    if cmd == verify.FWINFO:
        return json.dumps(FWINFO) + "\n", 0
    if cmd == verify.SELFTEST:
        return json.dumps(SELFTEST) + "\n", 0
    return f"sh: {cmd}: not found\n", 127


def test_serial_verify_reads_fwinfo_again_when_its_answer_was_garbled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeShell(commands=_answers, garble_output=1)
    shell = LinuxShell(Console(fake, name="fake"), load_board("es-virt"))

    opened: list[Path | None] = []

    @contextlib.contextmanager
    def open_shell(
        target: Target, timeout: float = 20.0, *, transcript: Path | None = None
    ) -> Iterator[LinuxShell]:
        opened.append(transcript)
        yield shell

    monkeypatch.setattr(verify, "open_shell", open_shell)
    target = Target(name="bench", board="es-virt", serial_url="loop://")
    journal = Journal.create("verify", board="es-virt", target="bench")
    report = verify.verify(target, via="serial", journal=journal)
    assert report["ok"], report["problems"]
    assert (report["board"], report["version"]) == ("es-virt", "1.2.0")
    assert fake.ran == [verify.FWINFO, verify.FWINFO, verify.SELFTEST]
    assert opened == [journal.files_dir / "console.log"]  # recorded into the session


def test_host_key_read_over_a_garbled_console_is_read_again() -> None:
    import hashlib

    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBkq routerkit"
    answer = f"{key}\nsha256 {hashlib.sha256(key.encode()).hexdigest()}\n"
    fake = FakeShell(commands={"rk-settings hostkey 2>&1": (answer, 0)}, garble_output=1)
    shell = LinuxShell(Console(fake, name="fake"), load_board("es-virt"))
    assert read_console_host_keys(shell) == [key]
    assert len(fake.ran) == 2
