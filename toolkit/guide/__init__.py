"""Assembly guides: the model, the validating loader, the photo pipeline and the checks.

- :mod:`toolkit.guide.model`  — dataclasses for a guide (iFixit/Dozuki shape).
- :mod:`toolkit.guide.loader` — YAML → model with errors that name file, line and field.
- :mod:`toolkit.guide.state`  — replays an assembly journal into "where are we" (resume).
- :mod:`toolkit.guide.photos` — orientation fix, metadata strip, resize, in parallel.
- :mod:`toolkit.guide.checks` — automatic checks (U-Boot banner, selftest) by name.

Nothing here prints; PIL and yaml are imported inside the functions that need them.
"""
