"""The flasher takes only ``rk_active`` and ``rk_tries`` from a device's state.env.

state.env lives on the boot FAT, which anyone holding the board can write. Imported whole,
it could set ``bootcmd`` or ``preboot`` in the U-Boot the flasher is driving (run on the
next ``boot``/``reset``), so the flasher's ``env import`` names its two variables, as
boot.scr does, and what it reads back is parsed strictly. Tested against the fake U-Boot
with ``fatload`` and ``env import`` that behave like U-Boot's.
"""

from __future__ import annotations

import pytest

from toolkit.boards import load_board
from toolkit.journeys.flash_serial_device import STATE_VARS, Device, parse_state_env
from toolkit.protocol.console import Console
from toolkit.target.uboot import UBoot
from toolkit.testing.fake import FakeUBoot

HOSTILE = b"rk_active=B\nrk_tries=1\nbootcmd=run evil\npreboot=reset\nbootdelay=-2\nrk_x=1\n"


def _uboot(state: bytes | None) -> FakeUBoot:
    """A fake U-Boot whose boot FAT holds ``state`` as state.env (None: no such file)."""
    fake: FakeUBoot

    def fatload(argv: list[str]) -> tuple[str, int]:
        # fatload <iface> <dev:part> <addr> <file>
        if state is None or argv[-1] != "state.env":
            return f"** Unable to read file {argv[-1]} **\n", 1
        fake.memory[int(argv[3], 16)] = state
        fake.env["filesize"] = f"{len(state):x}"
        return f"{len(state)} bytes read in 1 ms\n", 0

    def env(argv: list[str]) -> tuple[str, int]:
        # env import -t <addr> <size> [var ...]: with names, only those are imported (U-Boot)
        if argv[1:3] != ["import", "-t"]:
            return "Usage: env import ...\n", 1
        size = fake.env["filesize"] if argv[4] == "${filesize}" else argv[4]
        text = fake._ram(int(argv[3], 16), int(size, 16)).decode("latin-1")
        wanted = set(argv[5:])
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and (not wanted or key in wanted):
                fake.env[key] = value
        return "", 0

    def test(argv: list[str]) -> tuple[str, int]:
        # test "${name}" = "value", compared on the raw value (no console in between)
        if len(argv) != 4 or argv[2] != "=":
            return "", 1
        left = argv[1]
        if left.startswith("${") and left.endswith("}"):
            left = fake.env.get(left[2:-1], "")
        return "", int(left != argv[3])

    fake = FakeUBoot(at_prompt=True, commands={"fatload": fatload, "env": env, "test": test})
    return fake


def _device(fake: FakeUBoot) -> Device:
    board = load_board("es-virt")
    return Device(UBoot(Console(fake, name="fake"), board), board)


def test_env_import_names_the_variables_and_nothing_else_reaches_uboot() -> None:
    fake = _uboot(HOSTILE)
    before = dict(fake.env)
    assert _device(fake).active_slot() == "B"
    [line] = [line for line in fake.lines if "env import" in line]
    assert line.split("env import -t ", 1)[1].split(";")[0].split()[2:] == list(STATE_VARS)
    changed = {k for k in fake.env.keys() | before.keys() if fake.env.get(k) != before.get(k)}
    assert changed == {"rk_active", "rk_tries", "filesize"}
    assert fake.env["rk_active"] == "B" and fake.env["rk_tries"] == "1"
    assert "bootcmd" not in fake.env and "preboot" not in fake.env and "rk_x" not in fake.env


@pytest.mark.parametrize(
    "value",
    ["B; reset", "B\x1b[2J", "Z", "b", "B" * 17, ""],
    ids=["command", "escape", "unknown", "lowercase", "long", "empty"],
)
def test_a_value_that_is_not_a_slot_counts_as_slot_a_like_boot_scr(value: str) -> None:
    fake = _uboot(f"rk_active={value}\nrk_tries=0\n".encode("latin-1"))
    assert _device(fake).active_slot() == "A"


def test_no_state_file_means_slot_a() -> None:
    assert _device(_uboot(None)).active_slot() == "A"


def test_parse_state_env_keeps_only_sane_rk_pairs() -> None:
    text = (
        "rk_active=B\r\nrk_tries=3\nrk_max_tries=3\nbootcmd=run evil\nRK_ACTIVE=A\nrk_active2=A\n"
        "rk_note=two words\nrk_esc=\x1b[2J\nrk_long=" + "9" * 17 + "\n  rk_x=1  \n=B\nrk_y\n"
        "\nEnvironment size: 42/65532 bytes\n"
    )
    assert parse_state_env(text) == {
        "rk_active": "B",
        "rk_tries": "3",
        "rk_max_tries": "3",
        "rk_x": "1",
    }
