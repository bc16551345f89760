"""``routerkit demo``: the whole journey on the virtual sample, as a tester would type it.

The demo is a scripted tour of the real command line: every stage runs a ``routerkit``
command in a subprocess (shown before it runs, its progress streaming to the terminal), reads
the command's ``--json`` result, and the tour ends with a summary table. Because it only uses
the public commands, it is also the broadest end-to-end test we have.

Everything the demo starts (the sample, the channel's HTTP server, the community tracker) is
stopped at the end, also after a failure or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from toolkit.boards import DEFAULT_BOARD
from toolkit.cli._app import get_app, output_options
from toolkit.errors import RouterkitError

SAMPLE = "demo"
V1, V2 = "1.1.0", "1.2.0-nightly.1"


@dataclass
class Stage:
    name: str
    seconds: float
    ok: bool
    detail: str = ""


@dataclass
class Tour:
    workdir: Path
    env: dict[str, str]
    stages: list[Stage] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    #: where results worth opening afterwards go (the share card, the weekly page)
    keep: Path = Path(".")

    def run(self, title: str, *args: str, check: bool = True) -> dict[str, Any]:
        """Run ``routerkit ARGS --json``; show it, stream its progress, return its JSON."""
        cmd = [sys.executable, "-m", "toolkit.cli", *args, "--json"]
        shown = "routerkit " + " ".join(shlex.quote(a) for a in args)
        click.secho(f"\n▶ {title}", bold=True, err=True)
        click.secho(f"  $ {shown}", fg="cyan", err=True)
        start = time.monotonic()
        proc = subprocess.run(
            cmd, stdout=subprocess.PIPE, text=True, env=self.env, cwd=self.workdir
        )
        seconds = time.monotonic() - start
        result: dict[str, Any] = {}
        lines = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("{")]
        if lines:
            with contextlib.suppress(ValueError):
                result = json.loads(lines[-1])
        ok = proc.returncode == 0
        self.stages.append(Stage(title, seconds, ok, _detail(result)))
        if ok:
            click.secho(f"  ✓ {seconds:.1f} s  {_detail(result)}", fg="green", err=True)
        else:
            click.secho(
                f"  ✗ exit {proc.returncode}: {result.get('error', '')}", fg="red", err=True
            )
            if check:
                raise RouterkitError(f"demo stage failed: {title} (exit {proc.returncode})")
        return result


def _detail(result: dict[str, Any]) -> str:
    if "version_before" in result and "version_after" in result:
        fixes = ", ".join(f"#{f['id']}" for f in result.get("fixes_yours") or [])
        return (
            f"{result['version_before']} → {result['version_after']} "
            f"(slot {result.get('slot')}, {result.get('path')})"
            + (f"; claims to fix your {fixes}" if fixes else "")
        )
    if result.get("verified"):
        return str(result["verified"])
    if isinstance(result.get("builds"), list):  # firmware changes (the weekly page counts them)
        yours = sorted({r for b in result["builds"] for r in b.get("yours") or {}})
        return f"{len(result['builds'])} build(s) with notes" + (
            f"; fixes your {', '.join('#' + r for r in yours)}" if yours else ""
        )
    if "html" in result:
        return (
            f"{result['html']} ({result.get('fixed', 0)} fixed, {result.get('shared', 0)} shared)"
        )
    if "serial_url" in result:
        return f"serial {result['serial_url']}, ssh 127.0.0.1:{result.get('ssh_port')}"
    for key in ("url", "path", "version", "session"):
        if key in result:
            return f"{key}: {result[key]}"
    return ""


@contextlib.contextmanager
def _serve(directory: Path) -> Iterator[str]:
    """Serve ``directory`` over HTTP on 127.0.0.1 (the nightly channel's "CDN")."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _make_photos(directory: Path, count: int) -> list[Path]:
    """Photos "taken" at each step: generated JPEGs with EXIF, as a phone would save them."""
    from PIL import Image, ImageDraw

    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        img = Image.new("RGB", (1600, 1200), (30 + 7 * i % 200, 60, 90))
        draw = ImageDraw.Draw(img)
        for k in range(0, 1600, 40):
            draw.line([(k, 0), (1600 - k, 1200)], fill=(200, (k * 3 + i * 11) % 255, 120), width=3)
        draw.text((40, 40), f"routerkit demo photo {i + 1}", fill=(255, 255, 255))
        exif = Image.Exif()
        exif[0x010F] = "DemoPhone"  # Make
        exif[0x0112] = 1  # Orientation
        path = directory / f"step-{i + 1:02d}.jpg"
        img.save(path, quality=88, exif=exif.tobytes())
        out.append(path)
    return out


@click.command()
@click.option("--keep", is_flag=True, help="Leave the sample and tracker running at the end.")
@output_options
def demo(keep: bool) -> None:
    """Run the whole journey on a virtual sample (what `make demo` does).

    Builds two signed firmware versions and publishes them to a local nightly channel, boots
    the virtual sample, walks the assembly guide with generated photos, flashes v1 over the
    serial console, files a bug on a local Roundup tracker, publishes the nightly with signed
    release notes that fix it, upgrades over SSH, confirms the fix, shares the build log with
    a share card and builds the weekly page, then stops everything it started.

    \b
    Example:
      routerkit demo
    """
    app = get_app()
    start = time.monotonic()
    home = _demo_home()
    with tempfile.TemporaryDirectory(prefix="routerkit-demo-") as tmp:
        work = Path(tmp)
        env = os.environ.copy()
        # The demo keeps its own journals, keys and config (so it never touches yours), and
        # consents to uploads for its own loopback tracker only.
        env["ROUTERKIT_DATA"] = str(home / "data")
        env["ROUTERKIT_CONFIG"] = str(home / "config")
        tour = Tour(workdir=work, env=env, keep=home)
        tour.urls["demo records"] = str(home)
        try:
            _journey(tour, work)
        finally:
            if not keep:
                tour.run("Stop the virtual sample", "sample", "down", "--name", SAMPLE, check=False)
                tour.run("Stop the community tracker", "community", "stop", check=False)
        total = time.monotonic() - start
    _summary(tour, total, app.json)


def _demo_home() -> Path:
    from toolkit import paths

    home = paths.data_dir() / "demo"
    config = home / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "config.toml").write_text(
        "# Written by `routerkit demo`: consent to share with the demo's local tracker.\n"
        "[community]\nconsent = true\n"
    )
    return home


def _journey(tour: Tour, work: Path) -> None:
    out = work / "images"
    v1 = tour.run(
        f"Build firmware {V1} (signed)", "firmware", "build", "--version", V1, "--out", str(out)
    )
    v2 = tour.run(
        f"Build firmware {V2} (signed)", "firmware", "build", "--version", V2, "--out", str(out)
    )
    repo = work / "channel"
    tour.run(
        f"Publish {V1} to the nightly channel",
        "firmware",
        "publish",
        v1["path"],
        "--channel",
        "nightly",
        "--repo",
        str(repo),
    )
    with _serve(repo) as url:
        tour.urls["nightly channel"] = url
        tour.run(
            "Boot the virtual sample (factory firmware 1.0.0 in both slots)",
            "sample",
            "up",
            "--name",
            SAMPLE,
            "--fresh",
        )
        answers = work / "answers.json"
        answers.write_text(_answers(_make_photos(work / "phone", 16)))
        assembly = tour.run(
            "Assemble it, step by step, with photos",
            "assemble",
            "--board",
            DEFAULT_BOARD,
            "--non-interactive",
            "--answers",
            str(answers),
            "--target",
            SAMPLE,
        )
        # Flashes and verifications are recorded into the assembly's session: one build log.
        session = ["--session", assembly["session"]] if assembly.get("session") else []
        tour.run(
            f"Flash {V1} over the serial console (U-Boot)",
            "flash",
            v1["path"],
            "--via",
            "serial",
            "--target",
            SAMPLE,
            "--yes",
            *session,
        )
        tour.run("Verify over the serial console", "verify", "--via", "serial", "--target", SAMPLE)
        # The weekly loop: a tester reports a bug; the next nightly's signed notes say it fixes it
        community = tour.run("Start the local community tracker (Roundup)", "community", "serve")
        if community.get("url"):
            tour.urls["community tracker"] = community["url"]
        bug = tour.run(
            "File a bug report",
            "bug",
            "Demo: fan reported absent by selftest",
            *session,
            "--to",
            "roundup",
            "--yes",
        )
        if bug.get("url"):
            tour.urls["bug report"] = bug["url"]
        report = str(bug.get("url") or "").rsplit("issue", 1)[-1]
        notes = work / "notes.yaml"
        notes.write_text(
            "summary: Fan control reports the fan again\n"
            "summary_zh: 风扇控制重新报告风扇状态\n"
            "changes:\n  - selftest reads the fan through the new driver\n"
            + (f"fixes: [{report}]\n" if report.isdigit() else "")
        )
        tour.run(
            f"Publish {V2} with signed release notes",
            "firmware",
            "publish",
            v2["path"],
            "--channel",
            "nightly",
            "--repo",
            str(repo),
            "--notes",
            str(notes),
        )
        channel = ["--url", url, "--root", str(repo / "metadata" / "1.root.json")]
        tour.run("What the nightly changes (yours marked)", "firmware", "changes", *channel)
        tour.run(
            "Pull the newest nightly and upgrade over SSH",
            "flash",
            "--channel",
            "nightly",
            "--url",
            url,
            "--root",
            str(repo / "metadata" / "1.root.json"),
            "--via",
            "ssh",
            "--target",
            SAMPLE,
            "--yes",
            *session,
        )
        tour.run("Verify over SSH", "verify", "--via", "ssh", "--target", SAMPLE)
        if report.isdigit():
            tour.run(
                f"Confirm #{report} fixed from the bench", "confirm", report, "--fixed", "--yes"
            )
        tour.run("Preview exactly what would leave the machine", "share", *session, "--preview")
        card = tour.keep / "share-card.png"
        shared = tour.run(
            "Share the build log, with a share card",
            "share",
            *session,
            "--to",
            "roundup",
            "--name",
            "Demo tester",
            "--sample",
            "ES-001",
            "--card",
            str(card),
            "--yes",
        )
        if shared.get("url"):
            tour.urls["build log"] = shared["url"]
        if card.is_file():
            tour.urls["share card"] = str(card)
        page = tour.run(
            "Build the weekly page",
            "community",
            "weekly",
            "--out",
            str(tour.keep / "weekly"),
            *channel,
        )
        if page.get("html"):
            tour.urls["weekly page"] = str(page["html"])


def _answers(photos: list[Path]) -> str:
    """The non-interactive answers file: confirm every manual check, one photo per request."""
    return json.dumps({"confirm_all": True, "photos": [str(p) for p in photos]}, indent=2)


def _summary(tour: Tour, total: float, as_json: bool) -> None:
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": all(s.ok for s in tour.stages),
                    "seconds": round(total, 1),
                    "stages": [s.__dict__ for s in tour.stages],
                    "urls": tour.urls,
                }
            )
        )
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"routerkit demo — {total:.0f} s in all")
    table.add_column("stage")
    table.add_column("s", justify="right")
    table.add_column("result")
    for s in tour.stages:
        table.add_row(s.name, f"{s.seconds:.1f}", ("✓ " if s.ok else "✗ ") + s.detail)
    console = Console()
    console.print(table)
    for name, url in tour.urls.items():
        console.print(f"{name}: {url}")
    console.print(
        "[dim](the sample and the tracker were stopped; `routerkit demo --keep` leaves them running)[/]"
    )
