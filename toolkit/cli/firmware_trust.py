"""``routerkit firmware inspect|verify|publish|list|pull``: images you can trust."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from toolkit.cli._app import App, emit, output_options

DEV_BANNER = (
    "!!! SIGNED WITH THE LOCAL DEVELOPMENT KEY {keyid} — trusted on THIS machine only. "
    "Do not ship it: every other machine will refuse it. !!!"
)


def _loud(text: str) -> None:
    """Warnings that must not be missed: bold red on stderr, even under --json."""
    click.secho(printable(text), err=True, fg="red", bold=True)


# Characters a terminal acts on instead of showing: C0 and C1 controls (ESC starts colour,
# cursor and title sequences; \r rewrites the line) and the format characters, among them
# the bidi embeddings, overrides and isolates U+202A-E, U+2066-9 that reorder what follows
# (U+202E shows "gpj.exe" as "exe.jpg"); also line/paragraph separators, surrogates,
# private-use and unassigned code points.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def printable(value: object) -> str:
    """``str(value)`` with everything a terminal would act on written as an escape.

    An image's metadata, FIT node names and descriptions, and a channel's listing are
    written by whoever made the image: shown raw, an ``ESC]`` or ``\\r`` in a version could
    repaint the line that says "signature BAD". ``--json`` needs none of this (JSON
    escapes control characters itself).
    """
    import unicodedata

    text = str(value)
    if text.isprintable():  # fast path; isprintable() is False for every unsafe character
        return text
    out = []
    for char in text:
        if unicodedata.category(char) not in _UNSAFE_CATEGORIES:
            out.append(char)
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return "".join(out)


def _signature_status(parsed: Any) -> dict[str, Any]:
    from toolkit.errors import SignatureError
    from toolkit.firmware import keys as keyring
    from toolkit.firmware.verify import check_signature

    sig = parsed.signature
    if sig is None:
        return {"status": "unsigned", "keyid": None, "dev_key": False}
    info: dict[str, Any] = {"keyid": sig.keyid, "comment": sig.comment}
    try:
        key = check_signature(parsed)
        info.update(status="trusted", key_file=str(key.path), source=key.source)
        info["dev_key"] = key.is_dev or sig.keyid == keyring.local_dev_keyid()
    except SignatureError as err:
        info.update(
            status="unknown signer" if "unknown signer" in err.message else "BAD",
            error=err.message,
            dev_key=False,
        )
        # The comment is untrusted, but a foreign dev-signed image deserves a clear word.
        info["claims_dev_key"] = "DEVELOPMENT" in sig.comment
    return info


@click.command()
@click.argument("image", type=click.Path(dir_okay=False, path_type=Path))
@output_options
def inspect(image: Path) -> None:
    """Show everything about IMAGE: versions, boards, sizes, hashes, signer, FIT contents.

    Inspecting never fails on a bad signature or hash: it reports them. Only an image whose
    structure cannot be read is an error (exit 11).
    """
    import hashlib

    from toolkit.errors import ImageFormatError
    from toolkit.firmware.image import fit_hash_problems, parse, read_fit

    parsed = parse(image)
    meta = parsed.metadata
    signature = _signature_status(parsed)

    fit: dict[str, Any] = {"size": parsed.fit_size}
    with parsed.fit() as view:
        fit["sha256"] = hashlib.sha256(view).hexdigest()
        try:
            info = read_fit(view)
            fit.update(
                description=info.description,
                timestamp=info.timestamp,
                default_config=info.default_config,
                configurations=info.configurations,
                images=[
                    {
                        "name": i.name,
                        "type": i.type,
                        "arch": i.arch,
                        "os": i.os,
                        "compression": i.compression,
                        "description": i.description,
                        "size": i.data_size,
                        "hashes": {h.algo: h.value.hex() for h in i.hashes},
                    }
                    for i in info.images
                ],
                hash_problems=fit_hash_problems(view, info),
            )
        except ImageFormatError as err:
            fit["error"] = err.message
    fit["sha256_matches_metadata"] = fit["sha256"] == str(meta.get("fit_sha256")).lower()
    warnings = []
    if meta.get("development") is True:
        warnings.append(
            "DEVELOPMENT IMAGE (built with --dev): the committed TEST key can log in "
            "as root. `routerkit flash` refuses it unless it is signed by a "
            "development key; never put it on a real device."
        )
    if signature.get("dev_key"):
        warnings.append(DEV_BANNER.format(keyid=signature["keyid"]))
    elif signature.get("claims_dev_key"):
        warnings.append("signed with ANOTHER machine's development key (per its untrusted comment)")
    if not fit["sha256_matches_metadata"]:
        warnings.append("the FIT does NOT match the sha256 in the signed metadata")
    if fit.get("hash_problems"):
        warnings.append("FIT hash nodes do NOT match: " + "; ".join(fit["hash_problems"]))
    result = {
        "ok": True,
        "path": str(image),
        "size": parsed.size,
        "footer": parsed.footer.__dict__,
        "metadata": meta,
        "signature": signature,
        "fit": fit,
        "warnings": warnings,
    }
    for warning in warnings:
        _loud(warning)

    def human(app: App) -> None:
        def row(key: str, value: object) -> None:
            click.echo(f"{key:<25} {printable(value)}")

        devices = meta.get("supported_devices", [])
        row("image", f"{image} ({parsed.size} bytes)")
        row("version", meta.get("version"))
        row("compat_version", meta.get("compat_version"))
        row("board", meta.get("board", "-"))
        row(
            "supported_devices",
            ", ".join(map(str, devices)) if isinstance(devices, list) else devices,
        )
        for key in ("build_date", "source_revision", "ssh_host_key_fingerprint"):
            row(key, meta.get(key, "-"))
        row("signer", f"{signature.get('keyid')} ({signature['status']})")
        if signature.get("dev_key"):
            click.secho(f"{'':<25} LOCAL DEVELOPMENT KEY — THIS MACHINE ONLY", fg="red", bold=True)
        row(
            "FIT",
            f"{fit['size']} bytes, sha256 {fit['sha256']}"
            + ("" if fit["sha256_matches_metadata"] else "  MISMATCH"),
        )
        if "error" in fit:
            row("FIT contents", f"unreadable: {fit['error']}")
        else:
            row("FIT description", fit.get("description"))
            for img in fit["images"]:
                hashes = ", ".join(f"{a} {v[:16]}…" for a, v in img["hashes"].items())
                click.echo(
                    printable(
                        f"  {img['name']:<20} {img['type'] or '?':<8} {img['arch'] or '-':<6} "
                        f"{img['compression'] or '-':<6} {img['size']:>10} B  {hashes}"
                    )
                )
            for name, conf in fit["configurations"].items():
                mark = " (default)" if name == fit.get("default_config") else ""
                click.echo(
                    printable(
                        f"  config {name}{mark}: " + ", ".join(f"{k}={v}" for k, v in conf.items())
                    )
                )

    emit(result, human)


@click.command()
@click.argument("image", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--board", "-b", required=True, help="Board id (see firmware/boards/).")
@click.option("--running-version", help="Version the device runs now (default: last one recorded).")
@click.option("--allow-downgrade", is_flag=True, help="Accept an older image (loud, recorded).")
@click.option(
    "--force-board", is_flag=True, help="Accept an image for another board (loud, recorded)."
)
@output_options
def verify(
    image: Path, board: str, running_version: str | None, allow_downgrade: bool, force_board: bool
) -> None:
    """Check IMAGE for BOARD: signature, board, compat_version, size, downgrade, FIT hashes."""
    from toolkit.boards import load_board
    from toolkit.firmware.verify import detect_running_version, verify_image
    from toolkit.record import Journal

    board_obj = load_board(board)
    source = "given"
    if running_version is None:
        running_version = detect_running_version(board_obj.id)
        source = "recorded" if running_version else "unknown"
    journal = None
    if allow_downgrade or force_board:
        _loud(
            "!!! "
            + " and ".join(
                f
                for f, on in (
                    ("--allow-downgrade", allow_downgrade),
                    ("--force-board", force_board),
                )
                if on
            )
            + " given: safety checks are overridden and this is recorded !!!"
        )
        journal = Journal.create("verify", board=board_obj.id)
        journal.append(
            "verify_flags",
            image=str(image),
            allow_downgrade=allow_downgrade,
            force_board=force_board,
        )
    result = verify_image(
        image,
        board_obj,
        running_version=running_version,
        allow_downgrade=allow_downgrade,
        force_board=force_board,
        journal=journal,
    )
    for warning in result.warnings:
        _loud(warning)
    if result.dev_key:
        _loud(DEV_BANNER.format(keyid=result.signer))
    payload = {
        "ok": True,
        **result.to_dict(),
        "running_version_source": source,
        "session": journal.id if journal else None,
    }
    payload.pop("metadata")
    lines = [
        f"OK {image}: {result.version} for {result.board}, signed by {result.signer}"
        + (" (DEVELOPMENT key)" if result.dev_key else ""),
        f"  {result.size} of {result.slot_size} bytes of the slot; FIT hashes match",
    ]
    if running_version is None:
        lines.append("  running version unknown: downgrade not checked (--running-version V)")
    else:
        lines.append(f"  running version {running_version} ({source})")
    if journal:
        lines.append(f"  overrides recorded in session {journal.id}")
    emit(payload, "\n".join(lines))


@click.command()
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--channel", type=click.Choice(["nightly", "release"]), required=True)
@click.option(
    "--repo",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory of the static TUF repository (served as is by any web server).",
)
@click.option(
    "--keys",
    "keys_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory with the channel's TUF signing keys (default: your data dir).",
)
@click.option(
    "--keep",
    default=30,
    show_default=True,
    help="Nightlies kept listed per board (the history `bisect` walks); 0 keeps every one.",
)
@click.option(
    "--notes",
    "notes_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Release notes (YAML: summary, changes, fixes, touches), signed into the channel.",
)
@output_options
def publish(
    image: Path, channel: str, repo: Path, keys_dir: Path | None, keep: int, notes_file: Path | None
) -> None:
    """Publish IMAGE to CHANNEL of the TUF repository in REPO (created on first use).

    \b
    Examples:
      routerkit firmware publish out/es-virt-1.2.0.img --channel nightly --repo site/
      routerkit firmware publish fw.img --channel nightly --repo site/ --notes notes.yaml
    """
    from toolkit.firmware.channel_repo import publish as do_publish

    notes = None
    if notes_file is not None:
        from toolkit.firmware.notes import load

        notes = load(notes_file)
    result = do_publish(image, channel, repo, keys_dir=keys_dir, keep_nightlies=keep, notes=notes)
    for warning in result.warnings:
        _loud(warning)
    lines = [f"published {result.target_path} ({result.version}, {result.length} bytes)"]
    if result.created_repo:
        lines.append(f"  new repository; clients trust it with --root {repo}/metadata/1.root.json")
    for pruned in result.pruned:
        lines.append(f"  pruned {pruned}")
    if notes:
        fixes = ", ".join(f"#{r}" for r in notes["fixes"]) or "none"
        lines.append(f"  release notes signed in (fixes: {fixes})")
    emit({"ok": True, **result.to_dict(), "notes": notes}, "\n".join(lines))


_channel_opts = [
    click.option(
        "--channel", type=click.Choice(["nightly", "release"]), default="nightly", show_default=True
    ),
    click.option(
        "--url", help="Channel base URL (default: $ROUTERKIT_CHANNEL_URL or channel.toml)."
    ),
    click.option(
        "--root",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Trusted root.json (overrides the configured and bundled roots).",
    ),
]


def _with_channel_opts(func: Any) -> Any:
    for option in reversed(_channel_opts):
        func = option(func)
    return func


@click.command(name="list")
@_with_channel_opts
@click.option("--board", "-b", help="Only images for this board.")
@click.option(
    "--all",
    "all_",
    is_flag=True,
    help="The whole history the channel keeps (default: the newest image per board).",
)
@output_options
def list_(channel: str, url: str | None, root: Path | None, board: str | None, all_: bool) -> None:
    """List the images of a channel, newest first.

    Versions and boards are the channel's signed listing, shown as listed: listing changes
    nothing here. `pull` checks them against each image's own signed metadata before use.
    A nightly channel keeps older builds listed (`publish --keep N`): --all shows them.
    """
    from toolkit.firmware.channels import list_images

    every = list_images(channel, board, url=url, root=root)
    images = every
    if not all_:
        newest: dict[str, Any] = {}
        for image in every:  # newest first: the first of each board is its newest
            newest.setdefault(image.board, image)
        images = list(newest.values())
    older = len(every) - len(images)

    def human(app: App) -> None:
        if not images:
            click.echo(f"no images in {channel}" + (f" for {board}" if board else ""))
        if older:
            click.echo(f"({older} older builds kept in the channel: --all lists them)", err=True)
        for img in images:
            click.echo(
                printable(
                    f"{img.version:<28} {img.board:<12} {img.length:>10} B  {img.target_path}"
                )
            )

    emit(
        {
            "ok": True,
            "channel": channel,
            "images": [i.to_dict() for i in images],
            "older": older,
        },
        human,
    )


@click.command()
@_with_channel_opts
@click.option("--board", "-b", required=True, help="Board id the image must support.")
@click.option("--version", "version", help="A specific version instead of the newest.")
@click.option("--running-version", help="Refuse images older than this (device's version).")
@click.option("--allow-downgrade", is_flag=True, help="Accept an older image than already pulled.")
@output_options
def pull(
    channel: str,
    url: str | None,
    root: Path | None,
    board: str,
    version: str | None,
    running_version: str | None,
    allow_downgrade: bool,
) -> None:
    """Download and verify the newest image of a channel for BOARD (cached)."""
    from toolkit.firmware.channels import pull as do_pull

    if allow_downgrade:
        _loud("!!! --allow-downgrade given: an older image than you have may be pulled !!!")
    result = do_pull(
        channel,
        board,
        url=url,
        root=root,
        current_version=running_version,
        version=version,
        allow_downgrade=allow_downgrade,
    )
    if result.verified.dev_key:
        _loud(DEV_BANNER.format(keyid=result.verified.signer))
    emit(
        {"ok": True, **result.to_dict()},
        f"{'cached' if result.cached else 'pulled'} {result.image.version} → {result.path}",
    )
