"""The board-independent model of a device under test (DESIGN §3).

- :mod:`toolkit.target.power`: how a device is switched on, off and power-cycled (QMP of the
  virtual sample, a bench's command, labgrid, or a person at the bench). The flash journeys,
  the sample lifecycle, the guide's live checks and the HIL fixtures all press the button
  through it.
- :mod:`toolkit.target.runner`: the one command runner (echo checked before Enter, answers
  framed between markers with the status and, where the device can, a checksum; a damaged
  answer re-runs an idempotent command, never is misread) and the one prompt wait.
- :mod:`toolkit.target.uboot`: the U-Boot driver on it (autoboot interrupt, ``run``, env,
  ``crc32``; reads of state asked twice).
- :mod:`toolkit.target.shell`: the Linux shell driver on it (``run``, ``check``, ``read_json``,
  ``read_file``; every answer checksummed on the device).

Nothing here prints: output of a power command is captured and handed to the caller.
"""
