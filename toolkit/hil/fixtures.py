"""routerkit's HIL fixtures and report hooks (loaded by ``toolkit.pytest_plugin``).

Fixtures (function-scoped handles on ONE target per session)::

    sample          the target, set up on first use (by default a virtual sample started for
                    the session); a HilSession: .target, .strategy, .sample_state, .lease
    uboot           toolkit.target.uboot.UBoot at a synced U-Boot prompt
    shell           toolkit.target.shell.LinuxShell on the serial console
    ssh             toolkit.transport.ssh.SSHConnection, host key checked (never auto-added)
    flashed_sample  the target with --routerkit-image flashed and verified once per session

Options (besides ``--routerkit-target`` and ``--routerkit-image`` of the plugin):
``--routerkit-board`` and ``--routerkit-flash-via``. Without ``--routerkit-target``,
``$ROUTERKIT_TARGET`` names the target (``routerkit bisect`` sets it for its command).

A failing test that used one of them gets the console transcript of its run (and the flash
record, if the session flashed) in its report and in JUnit XML (``<properties>`` and the
failure text). Everything heavy is imported inside the functions: this module is loaded by
every pytest run in an environment where routerkit is installed.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from toolkit.hil.session import HilSession

HIL_FIXTURES = frozenset({"sample", "uboot", "shell", "ssh", "flashed_sample", "routerkit_hil"})
_offset_key = pytest.StashKey[int]()
_started_key = pytest.StashKey[float]()
_session_key = pytest.StashKey["HilSession"]()
TAIL_LINES = 60
#: The default of ``--routerkit-target`` (set by ``routerkit bisect`` for the command it runs).
TARGET_ENV = "ROUTERKIT_TARGET"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("routerkit", "routerkit hardware-in-the-loop")
    group.addoption(
        "--routerkit-board", default=None,
        help="Board profile of the target (default: the target's own, else es-virt).",
    )  # fmt: skip
    group.addoption(
        "--routerkit-flash-via", default="auto", choices=("auto", "ssh", "serial"),
        help="How flashed_sample flashes --routerkit-image (auto: serial+TFTP when the bench has a "
        "TFTP dir, as the virtual sample has; else ssh when the target has an address).",
    )  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    """``$ROUTERKIT_TARGET`` is the target when ``--routerkit-target`` is not given: a test
    that ``routerkit bisect`` runs then tests the device the bisect has just flashed."""
    found = os.environ.get(TARGET_ENV)
    if found and not config.getoption("--routerkit-target", None):
        config.option.routerkit_target = found


def _uses_hil(item: pytest.Item | None) -> bool:
    return item is not None and bool(HIL_FIXTURES & set(getattr(item, "fixturenames", ())))


# --- session start: a bad target or image fails once, before any test ----------------------


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    raw = config.getoption("--routerkit-target", None)
    image = config.getoption("--routerkit-image", None)
    if not raw and not image:
        return
    from toolkit.errors import RouterkitError
    from toolkit.hil.session import parse_spec, validate_spec

    board = config.getoption("--routerkit-board", None)
    try:
        spec = parse_spec(raw)
        validate_spec(spec, board)
        if image:
            _verify_image(Path(image), spec, board)
    except RouterkitError as exc:
        raise pytest.UsageError(f"routerkit: {exc}") from None


def _verify_image(image: Path, spec: Any, board: str | None) -> None:
    """Signature, board, compat and hashes of --routerkit-image, checked on the host."""
    from toolkit.boards import DEFAULT_BOARD
    from toolkit.errors import ImageError, NotFoundError
    from toolkit.firmware.verify import verify_image

    if not image.is_file():
        raise NotFoundError(f"--routerkit-image {image} does not exist")
    if board is None and spec.kind == "lab":
        from toolkit import targets

        board = targets.resolve(spec.value).board
    try:
        verify_image(image, board or DEFAULT_BOARD)
    except ImageError as exc:
        exc.message = (
            f"--routerkit-image {image} failed verification, nothing was flashed: {exc.message}"
        )
        raise


# --- the session's target -----------------------------------------------------------------


@pytest.fixture(scope="session")
def routerkit_hil(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HilSession]:
    """The session's :class:`~toolkit.hil.session.HilSession` (nothing starts until used)."""
    from toolkit.hil.session import HilSession, parse_spec

    config = request.config
    spec = parse_spec(config.getoption("--routerkit-target", None))

    def shared_sample() -> Any:
        return request.getfixturevalue("routerkit_shared_sample")

    session = HilSession(
        spec, tmp_path_factory.mktemp("routerkit-hil"),
        board=config.getoption("--routerkit-board", None), shared_sample=shared_sample,
        flash_via=config.getoption("--routerkit-flash-via", "auto"),
    )  # fmt: skip
    if spec.kind == "virtual":
        # Ask for it now, so pytest tears it down after this session (it stops the sample).
        request.getfixturevalue("routerkit_shared_sample")
    config.stash[_session_key] = session
    try:
        yield session
    finally:
        session.close()


def _attempt(what: str, action: Callable[[], Any]) -> Any:
    """Run ``action``; a routerkit error fails the test's setup with one readable line
    (raised outside the ``except``, so the report does not repeat the error as context)."""
    from toolkit.errors import RouterkitError

    try:
        return action()
    except RouterkitError as exc:
        message = f"routerkit: {what}: {exc}"
    pytest.fail(message, pytrace=False)


@pytest.fixture
def sample(routerkit_hil: HilSession) -> HilSession:
    """The target, set up on first use: ``.target`` (a ``toolkit.targets.Target``),
    ``.strategy`` (its state machine), ``.sample_state`` (virtual samples), ``.lease`` (labgrid).
    Its state is what the previous test left; ask for ``uboot``/``shell``/``ssh`` for a known one.
    """

    def setup() -> HilSession:
        from toolkit.target.strategy import Status

        strategy = routerkit_hil.ensure()
        if strategy.status is Status.POWERED:
            # A freshly started virtual sample waits for its console: let it boot on its own.
            strategy.console  # noqa: B018 - attaching the console starts the guest
            strategy.forget(Status.UNKNOWN)
        return routerkit_hil

    return _attempt(f"target {routerkit_hil.name} cannot be used", setup)  # type: ignore[no-any-return]


@pytest.fixture
def uboot(routerkit_hil: HilSession) -> Any:
    """``toolkit.target.uboot.UBoot`` at a synced U-Boot prompt of the session's target."""
    return _attempt(
        f"cannot bring {routerkit_hil.name} to the U-Boot prompt",
        lambda: routerkit_hil.ensure().uboot(),
    )


@pytest.fixture
def shell(routerkit_hil: HilSession) -> Any:
    """``toolkit.target.shell.LinuxShell`` on the target's serial console (booted to Linux)."""
    return _attempt(
        f"cannot bring {routerkit_hil.name} to a Linux shell",
        lambda: routerkit_hil.ensure().shell(),
    )


@pytest.fixture
def ssh(routerkit_hil: HilSession) -> Any:
    """``toolkit.transport.ssh.SSHConnection`` to the target, kept for the session; the host
    key is checked (stored key, serial console, or the flashed image's metadata), never added
    blindly."""
    return _attempt(f"cannot open SSH to {routerkit_hil.name}", routerkit_hil.ssh)


@pytest.fixture
def flashed_sample(request: pytest.FixtureRequest, routerkit_hil: HilSession) -> HilSession:
    """The target with ``--routerkit-image`` flashed and verified, once per session
    (``.flash_result`` is the ``FlashResult``). Skipped when no image is given."""
    image = request.config.getoption("--routerkit-image", None)
    if not image:
        pytest.skip("flashed_sample needs --routerkit-image IMAGE")
    _attempt(
        f"flashing {image} onto {routerkit_hil.name} failed",
        lambda: routerkit_hil.flash_once(Path(image)),
    )
    return routerkit_hil


# --- per-test console slices and failure reports ------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    session = item.config.stash.get(_session_key, None)
    path = session.transcript_path if session is not None else None
    item.stash[_offset_key] = path.stat().st_size if path is not None and path.exists() else 0
    item.stash[_started_key] = time.time()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    try:
        return (yield)
    finally:
        # Keep the console between HIL tests (no reconnect, no re-sync cost); give the port
        # back before a test that does not use these fixtures (it may open the port itself).
        session = item.config.stash.get(_session_key, None)
        if session is not None and not _uses_hil(nextitem):
            session.release_console()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and _uses_hil(item):
        session = item.config.stash.get(_session_key, None)
        if session is not None:
            _attach(item, report, session)
    return report


def _attach(item: pytest.Item, report: pytest.TestReport, session: HilSession) -> None:
    from toolkit.protocol.console import strip_terminal

    props: list[tuple[str, str]] = [("routerkit_target", session.name)]
    strategy = session.strategy
    if strategy is not None:
        state = strategy.status.value
        if strategy.broken_reason:
            state += f": {strategy.broken_reason}"
        props.append(("routerkit_state", state))
    sections: list[tuple[str, str]] = []
    path = session.transcript_path
    if path.exists():
        with open(path, "rb") as fh:
            fh.seek(item.stash.get(_offset_key, 0))
            raw = fh.read()
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid)[-120:]
        log = session.workdir / "tests" / f"{safe}.{report.when}.console.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_bytes(raw)
        props.append(("routerkit_console_log", str(log)))
        lines = strip_terminal(raw).rstrip("\n").split("\n")
        tail = "\n".join(lines[-TAIL_LINES:])
        sections.append(
            (f"routerkit console ({session.name}, last {min(len(lines), TAIL_LINES)} lines)", tail)
        )
    props += _recording(item, report, session)
    record = session.flash_record()
    if record is not None:
        props.append(("routerkit_flash_session", str(record.get("session"))))
        props.append(("routerkit_flash_record", json.dumps(record, default=str, sort_keys=True)))
        sections.append(
            ("routerkit flash record", json.dumps(record, indent=2, default=str, sort_keys=True))
        )
    for prop in props:
        report.user_properties.append(prop)
        item.user_properties.append(prop)  # JUnit XML reads them from the teardown report
    longrepr: Any = report.longrepr
    for name, content in sections:
        if hasattr(longrepr, "addsection"):
            longrepr.addsection(name, content)  # in the terminal and in JUnit's failure text
        else:
            report.sections.append((name, content))


CAST_IN_JUNIT = 1 << 20  # a recording larger than this is named in the JUnit XML, not embedded


def _recording(
    item: pytest.Item, report: pytest.TestReport, session: HilSession
) -> list[tuple[str, str]]:
    """This test's part of the console recording, redacted, saved beside the console log and
    named (and, if not huge, embedded) in the report's properties, so the JUnit XML carries it."""
    from toolkit.community.recordings import redact_cast
    from toolkit.community.redact import Redactor
    from toolkit.protocol import asciicast

    path = session.transcript_path.with_suffix(".cast")
    try:
        whole = asciicast.read(path)
    except (OSError, ValueError):
        return []
    mine = whole.between(item.stash.get(_started_key, 0.0), time.time())
    if not mine.events:
        return []
    data = redact_cast(mine, Redactor.for_installation()).to_bytes()
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid)[-120:]
    out = session.workdir / "tests" / f"{safe}.{report.when}.cast"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    props = [("routerkit_console_cast", str(out))]
    if len(data) <= CAST_IN_JUNIT:
        props.append(("routerkit_console_cast_data", data.decode("utf-8")))
    return props
