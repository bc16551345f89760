"""``routerkit guide``: lint assembly guides and show one."""

from __future__ import annotations

from pathlib import Path

import click

from toolkit.boards import DEFAULT_BOARD
from toolkit.cli._app import App, emit, output_options
from toolkit.errors import GuideError


@click.group()
def guide() -> None:
    """Check and show assembly guides (assembly_guide/<board>/guide.yaml)."""


@guide.command("lint")
@click.argument("target", type=click.Path(path_type=Path), required=False)
@output_options
def lint(target: Path | None) -> None:
    """Check every guide under TARGET (a folder or one YAML file): schema, ids, illustrations.
    Without TARGET, every guide routerkit finds (ROUTERKIT_GUIDES, your config dir, the
    shipped ones; see `routerkit board list`).

    Each problem is printed as FILE:LINE: FIELD: message.

    \b
    Examples:
      routerkit guide lint
      routerkit guide lint assembly_guide
      routerkit guide lint assembly_guide/es-virt/guide.yaml --json
    """
    from toolkit.guide.loader import guide_files, guide_sources, lint_file

    files = [path for _, _, path in guide_sources()] if target is None else guide_files(target)
    issues = [issue for path in files for issue in lint_file(path)]
    payload = {
        "ok": not issues,
        "files": [str(f) for f in files],
        "issues": [
            {"file": i.file, "line": i.line, "field": i.field, "message": i.message} for i in issues
        ],
    }

    def human(app: App) -> None:
        for issue in issues:
            click.echo(str(issue))
        click.echo(f"{len(files)} guide(s), {len(issues)} problem(s)", err=True)

    emit(payload, human)
    if issues:
        raise GuideError(f"{len(issues)} problem(s) in {len(files)} guide(s)")


@guide.command("show")
@click.option("--board", default=DEFAULT_BOARD, show_default=True)
@output_options
def show(board: str) -> None:
    """Show a board's guide: tools, parts with quantities, steps, photos and checks."""
    from toolkit.guide.loader import load_board_guide

    g = load_board_guide(board)
    payload = {
        "ok": True,
        "board": g.board,
        "title": g.title,
        "difficulty": g.difficulty,
        "time_minutes": list(g.time_minutes),
        "tools": [{"id": t.id, "name": t.name, "note": t.note} for t in g.tools],
        "parts": [
            {"id": p.id, "name": p.name, "quantity": p.quantity, "note": p.note} for p in g.parts
        ],
        "prerequisites": list(g.prerequisites),
        "steps": [
            {
                "id": s.id,
                "title": s.title,
                "images": [str(i) for i in s.images],
                "photos": [{"id": p.id, "shows": p.shows} for p in s.photos],
                "checks": [{"id": c.id, "kind": c.kind, "prompt": c.prompt} for c in s.checks],
            }
            for s in g.steps
        ],
    }

    def human(app: App) -> None:
        click.echo(
            f"{g.title} ({g.board}) — {g.difficulty}, {g.time_minutes[0]}–{g.time_minutes[1]} min"
        )
        click.echo("\nTools:")
        for t in g.tools:
            click.echo(f"  - {t.name}" + (f" ({t.note})" if t.note else ""))
        click.echo("\nParts:")
        for p in g.parts:
            click.echo(f"  {p.quantity:>3} × {p.name}" + (f" ({p.note})" if p.note else ""))
        if g.prerequisites:
            click.echo("\nBefore you start:")
            for pre in g.prerequisites:
                click.echo(f"  - {pre}")
        click.echo("\nSteps:")
        for i, s in enumerate(g.steps, 1):
            extra = []
            if s.photos:
                extra.append(f"{len(s.photos)} photo(s)")
            auto = [c.kind for c in s.checks if not c.manual]
            if auto:
                extra.append("automatic: " + ", ".join(auto))
            click.echo(f"  {i:>2}. {s.title}" + (f"  [{'; '.join(extra)}]" if extra else ""))

    emit(payload, human)
