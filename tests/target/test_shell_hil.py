"""The shell driver on the real busybox of the session's sample (the HIL fixtures): the helper's
answers are exact, its files stay few, and a shell handed out on belief is proven by its first
command or brought back, never believed wrongly. Marked hil."""

from __future__ import annotations

import re
import time

import pytest

pytestmark = pytest.mark.hil

#: Over SSH: the PIDs of the root shell init keeps on the serial console (``-/bin/sh``).
_CONSOLE_SHELL = (
    "for p in /proc/[0-9]*; do case \"$(tr '\\0' ' ' <$p/cmdline 2>/dev/null)\" in "
    "'-/bin/sh '*) echo ${p#/proc/};; esac; done"
)


def test_the_helper_answers_exactly_and_keeps_few_files(shell) -> None:
    assert shell.execute("true").output == ""
    assert shell.execute("printf abc").output == "abc"  # no newline of its own: none added
    assert shell.execute("printf 'a\\n\\nb\\n\\n'").output == "a\n\nb\n\n"
    missing = shell.run("ls /nope")
    assert missing.exit_status != 0 and "/nope" in missing.output  # stderr is in the answer
    assert shell.run("exit_status() { return 7; }; exit_status").exit_status == 7
    shell.check("cd /etc")
    try:
        assert shell.check("pwd") == "/etc"  # the command ran in the shell itself
    finally:
        shell.check("cd /")
    # A background job writing after its command ended writes into that command's file,
    # never into a later answer.
    shell.check("(sleep 0.3; echo late) &")
    time.sleep(0.8)
    assert shell.check("echo now") == "now"
    for _ in range(40):
        assert shell.run("true").ok
    files = shell.check("ls -a /tmp").split()
    kept = [name for name in files if re.fullmatch(r"\.rk[0-9a-f]+", name)]
    assert 0 < len(kept) <= 16, kept


def test_a_shell_at_rest_is_handed_out_on_belief_and_proven_by_its_first_command(
    routerkit_hil, shell
) -> None:
    shell.run("true")  # the prompt came back to our last line: the console is at rest
    strategy = routerkit_hil.ensure()
    believed = strategy.shell()
    assert believed.believed is not None and strategy.history[-1].how == "believed"
    console = believed.console
    writes = console.writes
    version = believed.check("cat /etc/firmware-version")
    assert console.writes - writes == 2, "the command line and its Enter, nothing before them"
    assert believed.believed is None and version
    # Anything typed on the console that was not our own answered line ends the belief.
    console.write(b"\n")
    strategy.shell()
    assert strategy.history[-1].how == "checked"


def test_a_shell_that_stopped_answering_costs_a_new_boot_never_a_wrong_answer(
    routerkit_hil, shell, ssh
) -> None:
    """The console's shell is stopped from SSH while the console sits at rest: the next
    shell is handed out on belief, its first command gets no echo, and the state is then
    checked and restored (a power cycle and a boot) before the command runs, once."""
    version = shell.check("cat /etc/firmware-version")
    strategy = routerkit_hil.ensure()
    strategy.shell().run("true")  # at rest again after the SSH fixture's check
    pids = ssh.run(_CONSOLE_SHELL, check=True).stdout.split()
    assert pids, "no root shell on the serial console?"
    ssh.run(f"kill -STOP {' '.join(pids)}", check=True)
    believed = strategy.shell()
    assert believed.believed is not None
    boots = sum(t.how == "boot" for t in strategy.history)
    assert believed.check("cat /etc/firmware-version") == version
    assert sum(t.how == "boot" for t in strategy.history) == boots + 1
    assert strategy.history[-1].ok and strategy.status.value in ("linux", "ssh")
