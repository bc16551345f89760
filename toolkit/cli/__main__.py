"""``python -m toolkit.cli`` runs the ``routerkit`` command."""

from toolkit.cli import main

main()
