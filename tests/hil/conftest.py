"""Import what the plugin may load BEFORE any in-process pytester run.

(The plugin tests now run pytester in subprocesses; this stays as a guard for anyone who
switches a test back to ``runpytest_inprocess``.)

``pytester.runpytest_inprocess`` snapshots ``sys.modules`` and afterwards deletes every module
the inner run imported. A module imported again later is a new object, while C extensions keep
the old classes: ``cryptography`` then rejects its own ``NoEncryption()`` ("Encryption
algorithm must be a KeySerializationEncryption instance") in every later test of the process,
including other areas' tests. Loading the plugin's dependencies here keeps them in the snapshot.
"""

from __future__ import annotations

import importlib

import pytest

for _name in (
    "cryptography.hazmat.primitives.serialization",
    "cryptography.hazmat.primitives.asymmetric.ed25519",
    "paramiko",
    "serial",
    "serial.rfc2217",
    "serial.urlhandler.protocol_socket",
    "serial.urlhandler.protocol_rfc2217",
    "filelock",
    "toolkit.hil.fixtures",
    "toolkit.hil.session",
    "toolkit.target.strategy",
    "toolkit.target.power",
    "toolkit.coordinator",
    "toolkit.targets",
    "toolkit.lab",
    "toolkit.hostkeys",
    "toolkit.sample",
    "toolkit.sample.watch",
    "toolkit.protocol.console",
    "toolkit.target.runner",
    "toolkit.target.uboot",
    "toolkit.target.shell",
    "toolkit.transport.serial",
    "toolkit.transport.ssh",
    "toolkit.firmware.verify",
    "toolkit.firmware.build",
    "toolkit.firmware.image",
    "toolkit.journeys.flash",
    "toolkit.journeys.verify",
):
    importlib.import_module(_name)


@pytest.fixture(autouse=True)
def _inner_runs_ignore_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest prints untruncated summary lines when ``CI``/``BUILD_NUMBER`` is set, which
    repeats each error message; inner runs must report the same way in CI as on a desk."""
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("BUILD_NUMBER", raising=False)
