"""Tokens are kept per publisher and server, and never sent to another server (issue #11, 6.5)."""

from __future__ import annotations

import keyring
import pytest

from toolkit import paths
from toolkit.community import tokens
from toolkit.errors import PublishAuthError

A = "https://tracker-a.example.org/routerkit/"
B = "https://tracker-b.example.org/routerkit/"


@pytest.fixture(autouse=True)
def _no_env_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROUTERKIT_TOKEN", raising=False)
    monkeypatch.delenv("ROUTERKIT_TOKEN_URL", raising=False)


def test_a_token_for_one_tracker_is_not_found_for_another() -> None:
    tokens.store_token("roundup", A, "token-for-a")
    assert tokens.get_token("roundup", A) == "token-for-a"
    assert tokens.get_token("roundup", B) is None
    assert tokens.get_token("discourse", A) is None  # another publisher at the same URL


def test_the_same_server_spelled_differently_finds_its_token() -> None:
    tokens.store_token("roundup", "HTTPS://Tracker-A.example.org:443/routerkit", "token-for-a")
    assert tokens.get_token("roundup", A) == "token-for-a"


def test_switching_the_configured_url_never_sends_the_old_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from toolkit.community.publishers.roundup import RoundupPublisher

    tokens.store_token("roundup", A, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIzIn0.c2ln")
    (paths.config_dir() / "config.toml").write_text(f'[community]\nroundup_url = "{B}"\n')
    with pytest.raises(PublishAuthError) as err:
        RoundupPublisher.from_config()
    assert "tracker-b.example.org" in str(err.value) and "--url" in (err.value.hint or "")


def test_old_entry_for_this_exact_url_is_used_for_it_only_and_moved() -> None:
    old_url = "https://Tracker-A.example.org:443/routerkit"
    keyring.set_password(tokens.SERVICE, "roundup:" + old_url, "old-token")  # before normalisation
    assert tokens.get_token("roundup", B) is None
    assert tokens.get_token("roundup", old_url) == "old-token"
    assert keyring.get_password(tokens.SERVICE, "roundup:" + old_url) is None
    assert (
        keyring.get_password(tokens.SERVICE, "roundup:https://tracker-a.example.org/routerkit")
        == "old-token"
    )


def test_a_token_that_names_no_server_is_never_used_and_asks_to_log_in_again() -> None:
    keyring.set_password(tokens.SERVICE, "roundup", "unbound-token")
    with pytest.raises(PublishAuthError) as err:
        tokens.get_token("roundup", A)
    assert "unbound-token" not in str(err.value) and "log in again" in (err.value.hint or "")
    tokens.store_token("roundup", A, "fresh")  # logging in again replaces it
    assert keyring.get_password(tokens.SERVICE, "roundup") is None
    assert tokens.get_token("roundup", A) == "fresh" and tokens.get_token("roundup", B) is None


def test_environment_token_applies_only_to_its_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTERKIT_TOKEN", "env-token")
    assert tokens.get_token("roundup", A) is None  # no URL named: used nowhere
    monkeypatch.setenv("ROUTERKIT_TOKEN_URL", A)
    assert tokens.get_token("roundup", A) == "env-token"
    assert tokens.get_token("roundup", B) is None


def test_delete_removes_the_entry_for_that_server_only() -> None:
    tokens.store_token("roundup", A, "a")
    tokens.store_token("roundup", B, "b")
    tokens.delete_token("roundup", A + "/")
    assert tokens.get_token("roundup", A) is None and tokens.get_token("roundup", B) == "b"
