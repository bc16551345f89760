"""The board-independent model of a device under test (DESIGN §3).

- :mod:`toolkit.target.power`: how a device is switched on, off and power-cycled (QMP of the
  virtual sample, a bench's command, labgrid, or a person at the bench). The flash journeys,
  the sample lifecycle, the guide's live checks and the HIL fixtures all press the button
  through it.

Nothing here prints: output of a power command is captured and handed to the caller.
"""
