"""``routerkit board``: list, start and check board profiles (board kits for real benches)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from toolkit.boards import DEFAULT_BOARD
from toolkit.cli._app import App, emit, output_options
from toolkit.errors import ConfigError


@click.group()
def board() -> None:
    """List, start and check board profiles.

    Profiles are looked up in each directory of ROUTERKIT_BOARDS, then in your config dir
    (<config>/boards/NAME.toml), then among those routerkit ships; guides likewise in
    ROUTERKIT_GUIDES, <config>/guides/NAME/, then the shipped ones. The first match wins.
    """


@board.command("list")
@output_options
def list_() -> None:
    """Show every board, where its profile and guide come from (env, user or bundled), and
    the profiles of the same name it hides.

    \b
    Examples:
      routerkit board list
      routerkit board list --json
    """
    from toolkit import paths
    from toolkit.boards import board_sources
    from toolkit.guide.loader import guide_sources

    guides = {board_id: (origin, path) for board_id, origin, path in guide_sources()}
    rows: list[dict[str, Any]] = []
    for source in board_sources():
        guide = guides.get(source.id)
        rows.append(
            {
                "id": source.id,
                "origin": source.origin,
                "path": str(source.path),
                "guide": str(guide[1]) if guide else None,
                "guide_origin": guide[0] if guide else None,
                "shadows": [str(p) for p in source.shadows],
            }
        )
    payload = {
        "ok": True,
        "boards": rows,
        "search_path": [{"origin": o, "path": str(d)} for o, d in paths.board_dirs()],
    }

    def human(app: App) -> None:
        width = max((len(r["id"]) for r in rows), default=5)
        for row in rows:
            guide = f"guide: {row['guide_origin']}" if row["guide"] else "no guide"
            click.echo(f"{row['id']:<{width}}  {row['origin']:<7}  {row['path']}  ({guide})")
            for hidden in row["shadows"]:
                click.echo(f"{'':<{width}}  hides    {hidden}")
        if not rows:
            click.echo("no board profiles found", err=True)

    emit(payload, human)


@board.command("new")
@click.argument("name")
@click.option(
    "--from",
    "source",
    default=DEFAULT_BOARD,
    show_default=True,
    metavar="BOARD",
    help="The board whose profile to start from.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing profile and guide of NAME.")
@output_options
def new(name: str, source: str, force: bool) -> None:
    """Write a commented profile for board NAME into your config dir, with a guide skeleton.

    The values to measure on your bench are marked MEASURE; fill them in, then run
    `routerkit board lint NAME` until it is clean.

    \b
    Examples:
      routerkit board new my-router --from es-virt
      routerkit board lint my-router
    """
    from toolkit.boardkit import new_board

    made = new_board(name, source, force=force)
    payload = {
        "ok": True,
        "id": made.id,
        "from": made.source,
        "profile": str(made.profile),
        "guide": str(made.guide),
        "files": [str(p) for p in made.files],
    }

    def human(app: App) -> None:
        click.echo(f"profile: {made.profile}")
        click.echo(f"guide:   {made.guide}")
        click.echo(
            f"next: edit the values marked MEASURE, then `routerkit board lint {made.id}`", err=True
        )

    emit(payload, human)


@board.command("lint")
@click.argument("targets", nargs=-1, metavar="[NAME|FILE]...")
@output_options
def lint(targets: tuple[str, ...]) -> None:
    """Check board profiles against the schema: required keys and types, slots inside the disk
    and not overlapping, partitions numbered 1..n, and command templates dry-run with sample
    values (an unknown {placeholder} is caught here, not on the bench).

    Without arguments, every profile found is checked. Each problem is printed as
    FILE:LINE: KEY: message; the exit status is non-zero when there is one.

    \b
    Examples:
      routerkit board lint my-router
      routerkit board lint ~/.config/routerkit/boards/my-router.toml --json
    """
    from toolkit.boardkit import lint_file, resolve
    from toolkit.boards import board_sources

    files = [resolve(t) for t in targets] if targets else [s.path for s in board_sources()]
    issues = [issue for path in files for issue in lint_file(Path(path))]
    payload = {
        "ok": not issues,
        "files": [str(f) for f in files],
        "issues": [i.to_dict() for i in issues],
    }

    def human(app: App) -> None:
        for issue in issues:
            click.echo(str(issue))
        click.echo(f"{len(files)} profile(s), {len(issues)} problem(s)", err=True)

    emit(payload, human)
    if issues:
        raise ConfigError(f"{len(issues)} problem(s) in {len(files)} board profile(s)")
