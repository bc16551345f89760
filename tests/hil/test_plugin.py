"""The pytest plugin's options, fixtures and reports, run in pytester against fake devices
(a fake U-Boot behind ``socket://``) and a real but unreachable labgrid coordinator."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from .fakes import free_port, serve, short_board, silent, uboot_at_prompt

pytest_plugins = ["pytester"]

# labgrid's own pytest plugin cannot be configured twice in one process (pytester in-process).
NO_LG = ("-p", "no:labgrid", "-p", "no:cacheprovider")

UBOOT_TESTS = """
def test_version(uboot):
    assert uboot.version().startswith("U-Boot")

def test_fails_on_purpose(uboot):
    uboot.run("echo hello-from-the-failing-test")
    assert False, "failing on purpose"

def test_still_runs(uboot):
    assert uboot.run("echo again").strip() == "again"
"""


def _props(case: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in case.iter("property")}


def test_plugin_import_is_cheap_and_loads_the_hil_fixtures() -> None:
    code = (
        "import sys, toolkit.pytest_plugin, toolkit.hil.fixtures;"
        "heavy = [m for m in ('paramiko', 'serial', 'toolkit.sample', 'toolkit.protocol.console',"
        " 'toolkit.target.strategy', 'labgrid', 'yaml') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_fixtures_and_options_are_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--fixtures", *NO_LG)
    text = result.stdout.str()
    for name in ("sample", "uboot", "shell", "ssh", "flashed_sample", "routerkit_hil"):
        assert f"\n{name}" in text, name
    helptext = pytester.runpytest_subprocess("--help", *NO_LG).stdout.str()
    for option in (
        "--routerkit-target",
        "--routerkit-image",
        "--routerkit-board",
        "--routerkit-flash-via",
    ):
        assert option in helptext
    wrong = pytester.runpytest_subprocess("--routerkit-flash-via=carrier-pigeon", *NO_LG)
    assert wrong.ret == pytest.ExitCode.USAGE_ERROR and "invalid choice" in wrong.stderr.str()


def test_unknown_target_fails_the_session_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(UBOOT_TESTS)
    for target, says in [
        ("ftp://bench/x", "serial URL scheme ftp:// is not supported"),
        ("no-such-sample", "no running virtual sample has that name"),
        ("missing.toml:es1", "missing.toml"),
    ]:
        result = pytester.runpytest_subprocess("--routerkit-target", target, *NO_LG)
        assert result.ret == pytest.ExitCode.USAGE_ERROR, (target, result.stderr.str())
        err = result.stderr.str()
        assert err.count("routerkit:") == 1 and says in err, err
        assert "passed" not in result.stdout.str() and "failed" not in result.stdout.str()


def test_the_target_in_the_environment_is_the_default(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``$ROUTERKIT_TARGET`` (what `routerkit bisect` sets for its command) is the target of a
    plain ``pytest``: here one that does not exist, so the session says so once, before any
    test; ``--routerkit-target`` still wins."""
    pytester.makepyfile("def test_x(): pass\n")
    monkeypatch.setenv("ROUTERKIT_TARGET", "no-such-sample")
    result = pytester.runpytest_subprocess(*NO_LG)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    assert "unknown --routerkit-target 'no-such-sample'" in result.stderr.str()
    given = pytester.runpytest_subprocess("--routerkit-target", "ftp://bench/x", *NO_LG)
    assert "ftp://" in given.stderr.str() and "no-such-sample" not in given.stderr.str()


def test_image_that_fails_verification_fails_the_session_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(flashed_sample): pass\ndef test_y(flashed_sample): pass\n")
    junk = pytester.path / "junk.img"
    junk.write_bytes(b"not a firmware image" * 100)
    result = pytester.runpytest_subprocess("--routerkit-image", str(junk), *NO_LG)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert err.count("failed verification") == 1 and "nothing was flashed" in err, err
    missing = pytester.runpytest_subprocess("--routerkit-image", "nope.img", *NO_LG)
    assert missing.ret == pytest.ExitCode.USAGE_ERROR and "does not exist" in missing.stderr.str()


def test_tampered_image_fails_verification(pytester: pytest.Pytester, tmp_path: Path) -> None:
    from toolkit.firmware.build import build_image

    built = build_image("1.0.0", out=tmp_path / "es-virt-1.0.0.img")  # our own copy: the
    # shared cache's images are rewritten by other tests running at the same time
    data = bytearray(built.path.read_bytes())
    data[built.fit_size // 2] ^= 0xFF  # one bit flip inside the signed FIT
    bad = pytester.path / "tampered.img"
    bad.write_bytes(bytes(data))
    pytester.makepyfile("def test_x(flashed_sample): pass\n")
    result = pytester.runpytest_subprocess("--routerkit-image", str(bad), *NO_LG)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "failed verification" in result.stderr.str() and "sha256" in result.stderr.str()


def test_flashed_sample_without_an_image_is_skipped_with_the_reason(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("def test_x(flashed_sample): pass\n")
    result = pytester.runpytest_subprocess("-rs", *NO_LG)
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*flashed_sample needs --routerkit-image*"])


def test_serial_url_target_uboot_fixture_and_console_in_junit(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(UBOOT_TESTS)
    xml = tmp_path / "junit.xml"
    with serve(uboot_at_prompt) as device:
        result = pytester.runpytest_subprocess(
            "--routerkit-target", device.url, "--routerkit-board", str(short_board(tmp_path)),
            f"--junitxml={xml}", *NO_LG,
        )  # fmt: skip
    result.assert_outcomes(passed=2, failed=1)
    # The failure shows the console of that test in the terminal ...
    result.stdout.fnmatch_lines(
        ["*routerkit console (socket://127.0.0.1:*", "*hello-from-the-failing-test*"]
    )
    cases = {c.get("name"): c for c in ET.parse(xml).getroot().iter("testcase")}
    failing = cases["test_fails_on_purpose"]
    props = _props(failing)
    # ... and JUnit XML carries it: properties (target, state, log file) and the failure text.
    assert props["routerkit_target"] == device.url
    assert props["routerkit_state"] == "uboot"
    log = Path(props["routerkit_console_log"])
    assert b"hello-from-the-failing-test" in log.read_bytes()
    assert b"echo again" not in log.read_bytes(), "the log is this test's slice of the console"
    # ... and its timed recording (asciicast v2, redacted), this test's part only
    from toolkit.protocol import asciicast

    cast = asciicast.parse(props["routerkit_console_cast_data"].encode())
    assert "hello-from-the-failing-test" in cast.output() and "echo again" not in cast.output()
    assert Path(props["routerkit_console_cast"]).read_bytes() == cast.to_bytes()
    failure = failing.find("failure")
    assert failure is not None and "hello-from-the-failing-test" in (failure.text or "")
    assert _props(cases["test_version"]) == {}, "passing tests carry no attachments"


def test_failed_transition_errors_first_test_and_tells_later_ones_why(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(UBOOT_TESTS)
    xml = tmp_path / "junit.xml"
    with serve(silent) as device:
        result = pytester.runpytest_subprocess(
            "--routerkit-target", device.url, "--routerkit-board", str(short_board(tmp_path)),
            f"--junitxml={xml}", *NO_LG,
        )  # fmt: skip
    result.assert_outcomes(errors=3)
    text = result.stdout.str()
    assert text.count("cannot bring socket://") == 3
    assert text.count("unusable since an earlier transition failed: unknown → uboot failed") == 2
    cases = {c.get("name"): c for c in ET.parse(xml).getroot().iter("testcase")}
    assert _props(cases["test_still_runs"])["routerkit_state"].startswith(
        "broken: unknown → uboot failed"
    )


def test_unreachable_coordinator_is_reported_once_then_referred_to(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LG_COORDINATOR", f"127.0.0.1:{free_port()}")
    pytester.makepyfile(UBOOT_TESTS)
    result = pytester.runpytest_subprocess("--routerkit-target", "labgrid:es1", *NO_LG)
    result.assert_outcomes(errors=3)
    text = result.stdout.str()
    assert "is unreachable (is labgrid-coordinator running?)" in text
    assert text.count("setting it up failed earlier: labgrid coordinator") == 2
