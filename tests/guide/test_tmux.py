"""A real terminal: the interactive assembly driven through tmux (send-keys, capture-pane).

One session does the whole guide as a tester would: photos typed as a path, picked by a glob
and dropped into a watched folder; a step skipped with a reason; the automatic checks fail
(no sample runs here), show the `routerkit bug` command, and are waived; Ctrl-C at a photo
prompt exits 130 and `--resume` picks up at that very step.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.guide.scripted import assert_complete_and_unique, make_photos
from tests.tools import require
from toolkit.guide.loader import load_board_guide
from toolkit.record import Journal

GUIDE = load_board_guide("es-virt")
ROUTERKIT = str(Path(sys.executable).with_name("routerkit"))


@pytest.fixture(autouse=True, scope="module")
def _tools() -> None:
    require("tmux")


class Pane:
    def __init__(self, command: str) -> None:
        self.socket = f"rk-test-{os.getpid()}-{secrets.token_hex(3)}"
        self._tmux("new-session", "-d", "-x", "120", "-y", "40", "-s", "t", command)

    def _tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True
        ).stdout

    def capture(self) -> str:
        return self._tmux("capture-pane", "-p", "-J", "-S", "-5000", "-t", "t")

    def send(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "t", *keys)

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)

    def next_prompt(self, after: str, timeout: float = 60.0) -> tuple[str, str]:
        """Wait for new output that ends in a prompt (a line ending with '>') or the end marker."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.capture()
            lines = [line.rstrip() for line in screen.splitlines() if line.strip()]
            if (
                screen != after
                and lines
                and (lines[-1].endswith(">") or lines[-1].startswith("ALL-DONE"))
            ):
                return screen, lines[-1]
            time.sleep(0.05)
        raise AssertionError("no prompt in time; screen:\n" + self.capture()[-3000:])


def test_interactive_assembly_in_a_real_terminal(tmp_path: Path) -> None:
    phone, watch = tmp_path / "phone", tmp_path / "watch"
    make_photos(GUIDE, phone)
    watch.mkdir()
    env = " ".join(
        f"{k}={os.environ[k]}" for k in ("ROUTERKIT_DATA", "ROUTERKIT_CONFIG", "ROUTERKIT_CACHE")
    )
    cmd = f"{ROUTERKIT} assemble --no-open --watch {watch}"
    script = (
        f"cd {tmp_path}; export {env} NO_COLOR=1 TERM=xterm-256color; {cmd}; echo EXIT1=$?; "
        f"{cmd} --resume; echo EXIT2=$?; echo ALL-DONE; sleep 120"
    )
    pane = Pane(f"bash --norc --noprofile -c '{script}'")
    answered: list[tuple[str, str]] = []
    photo_no = 0
    interrupted = False
    try:
        screen = ""
        while True:
            screen, prompt = pane.next_prompt(screen)
            if prompt.startswith("ALL-DONE"):
                break
            if "start this step" in prompt or "continue this step" in prompt:
                current = screen.split("Step ")[-1].split(" · ")[0]  # "n of N"
                keys = "s" if current == "7 of 10" else ""
            elif "Why skip it?" in prompt:
                keys = "no USB-serial adapter on this bench"
            elif "path or glob" in prompt:
                spec = screen.rsplit("📷 ", 1)[-1].split(" — ")[0].strip()
                photo_no += 1
                if spec == "fan-fitted" and not interrupted:
                    interrupted = True
                    pane.send("C-c")
                    answered.append((prompt, "C-c"))
                    continue
                if photo_no % 3 == 1:  # drop it into the watched folder, like a phone sync
                    shutil.copy(phone / f"{spec}.jpg", watch / f"IMG_{photo_no:04d}.jpg")
                    answered.append((prompt, "watch"))
                    continue
                keys = (
                    str(phone / f"{spec}.jpg")
                    if photo_no % 3 == 2
                    else str(phone / f"{spec[:4]}*.jpg")
                )
            elif "which one" in prompt:
                keys = "1"
            elif "[y/n]" in prompt:
                keys = "y"
            elif "waive and go on" in prompt:
                keys = "w"
            elif "Reason (recorded)" in prompt:
                keys = "no sample running in this test"
            else:
                raise AssertionError(f"unexpected prompt {prompt!r}")
            answered.append((prompt, keys))
            if keys:
                pane.send("-l", keys)
            pane.send("Enter")
        final = pane.capture()
    finally:
        pane.kill()
    assert "EXIT1=130" in final and "EXIT2=0" in final, final[-3000:]
    assert "Step 1 of 10 · Unbox and check the parts" in final and "time so far" in final
    assert "resumed · time so far" in final  # the fan step again, marked as resumed
    assert "routerkit bug 'assembly check uboot failed' --session" in final
    assert "assembly complete: 9 steps done, 1 skipped" in final
    sessions = [j for j in Journal.all() if j.header.get("kind") == "assemble"]
    assert len(sessions) == 1
    records = sessions[0].events()
    assert_complete_and_unique(records, GUIDE)
    assert [r["reason"] for r in records if r["type"] == "step_skipped"] == [
        "no USB-serial adapter on this bench"
    ]
    assert [r["step"] for r in records if r["type"] == "paused"] == ["fan"]
    assert {r["source"] for r in records if r["type"] == "photo"} == {"watch", "path", "glob"}
    assert any(
        r["type"] == "check_waived" and r["reason"] == "no sample running in this test"
        for r in records
    )
