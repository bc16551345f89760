"""The HIL state machine against a fake U-Boot: explicit transitions, checks, and BROKEN."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hil.fakes import short_board
from toolkit.boards import load_board_file
from toolkit.errors import DeviceTimeout, TargetBrokenError
from toolkit.target.power import Power
from toolkit.target.strategy import Status, Strategy
from toolkit.testing.fake import FakeTransport, FakeUBoot


class ResetButton(Power):
    """A power switch whose cycle "boots" a new fake U-Boot (countdown from power-on)."""

    kind = "test"
    can_cycle = True

    def __init__(self, make) -> None:
        self.make = make
        self.device = make()
        self.cycles = 0

    def cycle(self) -> None:
        self.cycles += 1
        self.device = self.make()


def _strategy(tmp_path: Path, power: Power, status: Status = Status.UNKNOWN) -> Strategy:
    """A strategy whose console is the power switch's current fake device."""
    board = load_board_file(short_board(tmp_path))
    dev: Any = power
    return Strategy(
        board,
        power,
        url=lambda: f"fake://{dev.cycles}",
        connect=lambda _url: dev.device,
        transcript_path=tmp_path / "console.log",
        name="fake",
        status=status,
    )


def test_power_cycle_and_interrupt_reach_uboot_then_a_check_is_enough(tmp_path: Path) -> None:
    power = ResetButton(lambda: FakeUBoot(bootdelay=2.0))
    power.device = FakeTransport()  # before the first cycle the board says nothing
    strategy = _strategy(tmp_path, power)
    uboot = strategy.uboot()
    assert strategy.status is Status.UBOOT and power.cycles == 1
    assert uboot.version().startswith("U-Boot 2023.01")
    strategy.transition(Status.UBOOT)
    assert power.cycles == 1, "a board already at the prompt is checked, not reset"
    assert [t.how for t in strategy.history] == ["power-cycle", "checked"]
    assert "Hit any key to stop autoboot" in (tmp_path / "console.log").read_text()


def test_a_board_sitting_at_the_prompt_is_found_without_a_reset(tmp_path: Path) -> None:
    power = ResetButton(lambda: FakeUBoot(at_prompt=True))
    strategy = _strategy(tmp_path, power)
    strategy.transition(Status.UBOOT)
    assert power.cycles == 0 and strategy.history[-1].how == "found"


def test_a_stale_belief_costs_a_transition_not_a_wrong_answer(tmp_path: Path) -> None:
    power = ResetButton(lambda: FakeUBoot(bootdelay=2.0))
    strategy = _strategy(tmp_path, power, status=Status.UBOOT)  # believed, but the board is mute
    power.device = FakeTransport()
    strategy.transition(Status.UBOOT)
    assert power.cycles == 1 and strategy.status is Status.UBOOT


def test_failed_transition_breaks_the_strategy_and_later_ones_get_the_first_reason(
    tmp_path: Path,
) -> None:
    power = ResetButton(lambda: FakeTransport())  # power cycles, but U-Boot never answers
    strategy = _strategy(tmp_path, power)
    with pytest.raises(DeviceTimeout, match="did not answer"):
        strategy.transition(Status.UBOOT)
    assert strategy.status is Status.BROKEN
    assert strategy.broken_reason and "unknown → uboot failed" in strategy.broken_reason
    cycles = power.cycles
    with pytest.raises(TargetBrokenError, match="unknown → uboot failed.*did not answer"):
        strategy.transition(Status.LINUX)
    assert power.cycles == cycles, "a broken strategy does not touch the hardware again"


def test_without_power_control_a_silent_board_is_a_clear_failure(tmp_path: Path) -> None:
    class Manual(Power):
        device = FakeTransport()
        cycles = 0

    strategy = _strategy(tmp_path, Manual())
    with pytest.raises(DeviceTimeout):
        strategy.transition(Status.UBOOT)
    assert strategy.status is Status.BROKEN


@contextlib.contextmanager
def _on_fake_board(tmp_path: Path, bootdelay: float) -> Iterator[tuple[Any, Strategy]]:
    """The in-memory board of the flash tests (version 1.0.0 in slot A, powered off) and a
    strategy attached to its console."""
    from toolkit.boards import load_board
    from toolkit.record import Journal
    from toolkit.targets import Target
    from toolkit.testing import dropbear
    from toolkit.testing.fake_board import FakeBoard

    target = Target(name="dev", board="es-virt", serial_url="fake://dev")
    board = FakeBoard(bootdelay=bootdelay)
    board.install("A", dropbear.make_image("1.0.0", tmp_path / "x.img").read_bytes())
    journal = Journal.create("flash", board="es-virt", target="dev")
    with board.console(target, journal) as console:
        yield (
            board,
            Strategy.attached(
                console, load_board("es-virt"), board.power(target), status=Status.OFF
            ),
        )


def test_fresh_transitions_boot_anew_from_linux_and_from_uboot(tmp_path: Path) -> None:
    """``fresh=True``: a new boot whatever runs (``reboot`` at a shell, ``reset`` at U-Boot),
    stopping at U-Boot when that is what was asked (the in-memory board of the flash tests)."""
    with _on_fake_board(tmp_path, bootdelay=0.5) as (board, strategy):
        strategy.transition(Status.LINUX)
        assert strategy.history[-1].how == "boot" and board.power_cycles == 1
        boots = len(board.boots)
        strategy.transition(Status.LINUX, fresh=True)
        assert len(board.boots) == boots + 1 and strategy.history[-1].how == "reboot"
        strategy.transition(Status.UBOOT, fresh=True)
        assert strategy.status is Status.UBOOT and len(board.boots) == boots + 1
        strategy.transition(Status.LINUX, fresh=True)
        assert len(board.boots) == boots + 2 and strategy.history[-1].how == "reset"
        assert strategy.shell().check("cat /etc/firmware-version").strip() == "1.0.0"


@pytest.fixture
def linux(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Strategy]]:
    """A fake board booted to its shell under a strategy, the helper typed, console at rest."""
    from toolkit.target import runner

    monkeypatch.setattr(runner, "PROOF_TIMEOUT", 0.3)
    with _on_fake_board(tmp_path, bootdelay=0.3) as (board, strategy):
        assert strategy.shell().check("cat /etc/firmware-version").strip() == "1.0.0"
        yield board, strategy


def test_a_shell_at_rest_is_handed_out_without_a_round_trip(linux: tuple[Any, Strategy]) -> None:
    board, strategy = linux
    shell = strategy.shell()
    assert shell.believed is not None and strategy.history[-1].how == "believed"
    writes = shell.console.writes
    assert shell.check("cat /etc/firmware-version").strip() == "1.0.0"
    assert shell.console.writes - writes == 2  # the framed line and its Enter, no check first
    # A key typed by anyone else ends the belief: the next shell is checked first.
    shell.console.write(b"\n")
    strategy.shell()
    assert strategy.history[-1].how == "checked"


def test_a_believed_shell_that_is_busy_is_checked_then_the_command_runs_once(
    linux: tuple[Any, Strategy],
) -> None:
    """The shell on the console went busy without a word (a program took the foreground):
    the first command's frame never starts, Ctrl-C and the state check follow, and only then
    does the command run, once."""
    board, strategy = linux
    fake = board.shell
    original = fake._type
    busy = {"on": True}

    def program(char: str) -> None:  # a cooked tty: echoed, kept from the shell until Ctrl-C
        if busy["on"] and char != "\x03":
            fake._rx += char.encode()
            return
        if busy["on"]:
            busy["on"] = False
        original(char)

    fake._type = program  # type: ignore[method-assign]
    ran = len(fake.ran)
    shell = strategy.shell()
    assert shell.believed is not None
    assert shell.check("cat /etc/firmware-version").strip() == "1.0.0"
    assert fake.ran[ran:] == ["cat /etc/firmware-version"], "run once, after the check"
    assert [t.how for t in strategy.history[-2:]] == ["believed", "checked"]


def test_a_command_that_must_not_run_twice_waits_for_a_proven_prompt(
    linux: tuple[Any, Strategy],
) -> None:
    board, strategy = linux
    shell = strategy.shell()
    writes = shell.console.writes
    assert shell.run("cat /etc/firmware-version", idempotent=False).ok
    assert strategy.history[-1].how == "checked"  # proven before the line was typed
    assert shell.console.writes - writes > 2


def test_a_line_nothing_frames_is_typed_at_a_proven_prompt_only(
    linux: tuple[Any, Strategy],
) -> None:
    """``reboot`` has no answer to prove the shell with: the state is checked before it."""
    board, strategy = linux
    boots = len(board.boots)
    shell = strategy.shell()
    assert shell.believed is not None
    shell.reboot()
    assert strategy.history[-1].how == "checked" and shell.believed is None
    strategy.forget()
    assert strategy.shell().check("cat /etc/firmware-version").strip() == "1.0.0"
    assert len(board.boots) == boots + 1
