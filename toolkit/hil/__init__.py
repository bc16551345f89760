"""Hardware-in-the-loop testing: the target's state machine and the pytest fixtures.

- :mod:`toolkit.target.strategy`: ``Status`` (OFF → UBOOT → LINUX → SSH, BROKEN) and ``Strategy``,
  which moves a target between them over its console and power switch
  (:mod:`toolkit.target.power`).
- :mod:`toolkit.hil.session`: one target per pytest session (``--routerkit-target``).
- :mod:`toolkit.hil.fixtures`: the fixtures ``sample``, ``uboot``, ``shell``, ``ssh`` and
  ``flashed_sample`` and the hooks that attach console logs to failing tests. Loaded by
  ``toolkit.pytest_plugin`` (entry point ``pytest11``).

Nothing here is imported at package import time: the plugin must stay cheap for every pytest run.
"""
