"""``routerkit community``: run the local Roundup tracker, and log in to publishers."""

from __future__ import annotations

from pathlib import Path

import click

from toolkit.cli._app import App, emit, get_app, output_options
from toolkit.i18n import localized


@click.group()
def community() -> None:
    """Run the embedded community tracker (Roundup) and manage publisher tokens.

    \b
    Examples:
      routerkit community serve --json
      routerkit community password
      routerkit community login --to discourse --url https://forum.example.org
      routerkit community stop
      routerkit community weekly --out site/weekly
    """


@community.command()
@output_options
def serve() -> None:
    """Install (once) and start the local Roundup tracker on 127.0.0.1; print URL and pid."""
    from toolkit.community.server import LocalTracker

    info = LocalTracker().serve(get_app().reporter())
    emit(
        {"ok": True, **info.to_json()},
        f"Roundup tracker: {info.url} (pid {info.pid}, user {info.user})",
    )


@community.command()
@output_options
def stop() -> None:
    """Stop the local tracker started by `community serve`."""
    from toolkit.community.server import LocalTracker

    stopped = LocalTracker().stop()
    emit({"ok": True, "stopped": stopped}, "stopped" if stopped else "the tracker was not running")


@community.command()
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from stdin instead of prompting."
)
@output_options
def password(password_stdin: bool) -> None:
    """Set the web password of the local tracker's `routerkit` user.

    The tracker shows nothing to visitors who are not logged in; log in with this to read the
    reports in a browser.
    """
    import sys

    from toolkit.community.server import LocalTracker
    from toolkit.errors import ConsentRequired

    app: App = get_app()
    if password_stdin:
        secret = sys.stdin.readline().rstrip("\n")
    elif app.interactive:
        secret = click.prompt("new password", hide_input=True, confirmation_prompt=True, err=True)
    else:
        raise ConsentRequired(
            "no terminal to ask for the password", hint="pipe it in with --password-stdin"
        )
    tracker = LocalTracker()
    user = tracker.set_password(secret)
    url = tracker.state().get("url")
    emit(
        {"ok": True, "user": user, "url": url},
        f"log in to {url or 'the local tracker'} as {user!r}",
    )


@community.command()
@click.option(
    "--to",
    "publisher",
    type=click.Choice(["roundup", "discourse"]),
    default="roundup",
    show_default=True,
)
@click.option("--url", help="Server URL (default: the local tracker for roundup).")
@click.option(
    "--token-stdin", is_flag=True, help="Read the token/API key from stdin instead of prompting."
)
@output_options
def login(publisher: str, url: str | None, token_stdin: bool) -> None:
    """Store a token for a publisher in the system keyring.

    A token is stored for one server (publisher and URL) and only ever sent there: after
    switching `roundup_url` or `discourse_url`, log in to the new server.

    For the local tracker a JWT is issued for routerkit (30 days). For Discourse, paste a
    User-Api-Key, or an Api-Key together with `discourse_username` in config.toml.
    """
    import sys

    from toolkit.community import tokens
    from toolkit.errors import ConfigError

    app: App = get_app()
    if publisher == "roundup" and not url:
        from toolkit.community.server import LocalTracker

        tracker = LocalTracker()
        info = tracker.serve(app.reporter())
        url, token = info.url, tracker.issue_token(lifetime=30 * 86400)
    else:
        if not url:
            from toolkit.community.config import community_config

            url = community_config().get(f"{publisher}_url")
        if not url:
            raise ConfigError(
                f"no URL for {publisher}", hint=f"pass --url or set {publisher}_url in config.toml"
            )
        if token_stdin:
            token = sys.stdin.readline().strip()
        elif app.interactive:
            token = click.prompt("token", hide_input=True, err=True)
        else:
            from toolkit.errors import ConsentRequired

            raise ConsentRequired(
                "no terminal to ask for the token", hint="pipe it in with --token-stdin"
            )
    tokens.store_token(publisher, url, token)
    emit(
        {"ok": True, "publisher": publisher, "url": url},
        f"token for {publisher} at {url} stored in the keyring",
    )


@localized
@community.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("weekly"),
    show_default=True,
    help="Directory for index.html and weekly.json (serve it from any web host).",
)
@click.option(
    "--channel", type=click.Choice(["nightly", "release"]), default="nightly", show_default=True
)
@click.option("--url", help="Channel base URL (default: $ROUTERKIT_CHANNEL_URL or channel.toml).")
@click.option(
    "--root",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Trusted root.json of the channel.",
)
@click.option("--days", type=click.IntRange(1, 366), default=7, show_default=True)
@click.option("--no-channel", is_flag=True, help="Leave the builds out (no channel to read).")
@output_options
def weekly(
    out_dir: Path, channel: str, url: str | None, root: Path | None, days: int, no_channel: bool
) -> None:
    """Build the weekly page: builds and their notes, fixed reports with confirmation counts,
    the most-voted requests and bugs, the week's shared builds and the assembly-time
    leaderboard per board. Static (index.html + weekly.json), in English and Chinese.

    \b
    Examples:
      routerkit community weekly --out site/weekly
      routerkit community weekly --channel nightly --url http://127.0.0.1:8000/ --json
    """
    from toolkit.cli.loop import reading_publisher
    from toolkit.i18n import t
    from toolkit.journeys.loop import weekly_page

    images: list[object] = []
    if not no_channel:
        from toolkit.firmware.channels import list_images

        images = list(list_images(channel, None, url=url, root=root))
    pub = reading_publisher("roundup")
    try:
        page = weekly_page(pub, images, days=days)
    finally:
        pub.close()
    written = page.write(out_dir)
    data = page.data
    summary = {
        "builds": len(data["builds"]),
        "fixed": len(data["fixed"]),
        "top": len(data["top"]),
        "shared": len(data["shared"]),
        "boards": len(data["leaderboard"]),
    }
    emit(
        {"ok": True, "html": str(written["html"]), "json": str(written["json"]), **summary},
        t("weekly page written: {path}", path=written["html"])
        + "  ("
        + ", ".join(f"{k} {v}" for k, v in summary.items())
        + ")",
    )
