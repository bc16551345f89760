"""The one power path (``toolkit.target.power``): every kind of switch, and the callers that
press it (the serial flash, the pytest plugin's strategy) with a bench's shell command."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from toolkit.errors import ConfigError, ConsentRequired, DeviceError
from toolkit.target.power import CommandPower, ManualPower, QMPPower, from_target
from toolkit.targets import Target

#: What a bench's lab.toml says, with a `&&` that only a shell understands.
RELAY = 'echo relay off && touch "{mark}" && echo relay on'


def _relay(tmp_path: Path, name: str = "cycled") -> tuple[str, Path]:
    mark = tmp_path / name
    return RELAY.format(mark=mark), mark


def test_a_command_with_and_runs_through_the_shell_and_its_output_is_captured(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    command, mark = _relay(tmp_path)
    power = CommandPower(command)
    power.cycle()
    assert mark.exists()
    assert power.last_run is not None and power.last_run.exit_status == 0
    assert power.last_run.output == "relay off\nrelay on\n"
    out, err = capfd.readouterr()
    assert "relay" not in out and "relay" not in err, "a power command's output is never printed"


def test_a_failing_command_names_the_command_and_its_exit_status(tmp_path: Path) -> None:
    power = CommandPower("echo no relay on this bench >&2; exit 3")
    with pytest.raises(DeviceError) as info:
        power.cycle()
    assert "exit 3" in str(info.value) and "exit status 3" in str(info.value)
    assert info.value.last_output is not None and "no relay" in info.value.last_output


def test_a_hanging_command_is_killed_with_its_whole_pipeline(tmp_path: Path) -> None:
    power = CommandPower("echo pressing && sleep 30 && echo never", timeout=0.5)
    start = time.monotonic()
    with pytest.raises(DeviceError, match="did not finish in 0.5 s"):
        power.cycle()
    assert time.monotonic() - start < 5, "the sleep kept the pipe open: the group was not killed"
    assert power.last_run is not None and power.last_run.output == "pressing\n"


def test_off_and_on_commands_are_optional(tmp_path: Path) -> None:
    power = CommandPower("true")
    assert not power.can_off
    with pytest.raises(DeviceError, match="cannot be switched off"):
        power.off()
    power.on()  # nothing to run: the relay has no separate "on"
    with_off = CommandPower("true", off=f"touch {tmp_path / 'off'}", on=f"touch {tmp_path / 'on'}")
    with_off.off()
    with_off.on()
    assert (tmp_path / "off").exists() and (tmp_path / "on").exists()


def test_manual_power_asks_through_the_callback_or_refuses_without_one() -> None:
    asked: list[str] = []
    power = ManualPower(asked.append, name="target desk")
    assert power.can_cycle
    power.reset()
    assert asked == ["press the reset button of target desk now"]
    silent = ManualPower(None, name="target desk")
    assert not silent.can_cycle
    with pytest.raises(ConsentRequired, match="may not ask"):
        silent.cycle()


def test_qmp_power_reports_a_dead_socket_as_a_sample_error(tmp_path: Path) -> None:
    power = QMPPower(tmp_path / "gone.sock", name="ghost", timeout=0.2)
    with pytest.raises(DeviceError, match="ghost"):
        power.cycle()


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ({"kind": "command", "reset": "true"}, "command"),
        ({"kind": "qmp", "socket": "/nonexistent/qmp.sock", "sample": "es1"}, "qmp"),
        ({"kind": "manual"}, "manual"),
        ({}, "manual"),
    ],
)
def test_from_target_picks_the_switch_the_target_describes(spec: dict[str, Any], kind: str) -> None:
    assert from_target(Target(name="t", power=spec)).kind == kind


@pytest.mark.parametrize(
    "spec",
    [{"kind": "command"}, {"kind": "qmp"}, {"kind": "labgrid"}, {"kind": "usb-hub"}],
)
def test_from_target_refuses_incomplete_power_entries(spec: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        from_target(Target(name="t", power=spec))


def test_the_serial_flash_power_step_runs_a_lab_command_and_journals_its_output(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from toolkit.boards import load_board
    from toolkit.events import NullReporter
    from toolkit.journeys.flash import FlashOptions
    from toolkit.journeys.flash_serial import _Run, open_console, power_cycle
    from toolkit.record import Journal

    command, mark = _relay(tmp_path)
    target = Target(name="desk", serial_url="loop://", power={"kind": "command", "reset": command})
    journal = Journal.create("flash", board="es-virt", target="desk")
    run = _Run(
        tmp_path / "x.img", target, FlashOptions(), NullReporter(), journal, load_board("es-virt")
    )
    open_console(run)  # the console, and the target's strategy with its power switch
    with run.step("power-cycle"):
        power_cycle(run)
    assert mark.exists()
    record = journal.last("power")
    assert (
        record is not None
        and record["exit_status"] == 0
        and record["output"] == "relay off\nrelay on\n"
    )
    step = journal.last("step")
    assert step is not None and step["name"] == "power-cycle" and step["ok"] is True
    assert "relay" not in capfd.readouterr().out


def test_the_serial_flash_asks_for_a_manual_reset_only_when_it_may(tmp_path: Path) -> None:
    from toolkit.boards import load_board
    from toolkit.events import RecordingReporter
    from toolkit.journeys.flash import FlashOptions
    from toolkit.journeys.flash_serial import _Run, open_console, power_cycle
    from toolkit.record import Journal

    target = Target(name="desk", serial_url="loop://")
    journal = Journal.create("flash", board="es-virt", target="desk")
    reporter = RecordingReporter()
    board = load_board("es-virt")

    def opened(options: FlashOptions) -> _Run:
        run = _Run(tmp_path / "x.img", target, options, reporter, journal, board)
        open_console(run)
        return run

    with pytest.raises(ConsentRequired):
        power_cycle(opened(FlashOptions()))
    power_cycle(opened(FlashOptions(interactive=True)))
    assert ("message", "action", "press the reset button of target desk now") in reporter.events


def test_the_pytest_plugin_drives_a_lab_command_power_switch(tmp_path: Path) -> None:
    """`--routerkit-target lab.toml:desk`: the session's strategy presses the lab's relay."""
    from toolkit.hil.session import HilSession, parse_spec
    from toolkit.target.strategy import Status

    cycle, cycled = _relay(tmp_path, "cycled")
    off, switched_off = _relay(tmp_path, "off")
    lab = tmp_path / "lab.toml"
    lab.write_text(
        '[targets.desk]\nboard = "es-virt"\nserial_url = "socket://127.0.0.1:9"\n'
        f"power = {{ kind = \"command\", reset = '{cycle}', off = '{off}' }}\n"
    )
    session = HilSession(parse_spec(f"{lab}:desk"), tmp_path / "work")
    try:
        strategy = session.ensure()
        assert isinstance(strategy.power, CommandPower)
        strategy.transition(Status.OFF)
        assert switched_off.exists() and strategy.status is Status.OFF
        strategy.power.cycle()
        assert cycled.exists()
    finally:
        session.close()
