"""The SSH transport's tests run against the same light dropbear devices as the SSH flash's."""

from tests.journeys.flash_ssh.conftest import _light_ok, client_key, make_device

__all__ = ["_light_ok", "client_key", "make_device"]
