"""The community commands through the real CLI (CliRunner), against the real Roundup."""

from __future__ import annotations

import json
import socket

import pytest
from click.testing import CliRunner

from tests.community.fakes import assembly_session
from toolkit import paths
from toolkit.cli import root
from toolkit.community import tokens
from toolkit.community.outbox import Outbox


def _config(url: str, consent: bool = True) -> None:
    (paths.config_dir() / "config.toml").write_text(
        f'[community]\nconsent = {"true" if consent else "false"}\npublisher = "roundup"\nroundup_url = "{url}"\n'
    )


def _run(*args: str, input: str | None = None):
    result = CliRunner().invoke(root, list(args), input=input)
    return result


@pytest.fixture()
def configured(tracker):
    info = tracker.running()
    tokens.store_token("roundup", info.url, tracker.issue_token())
    _config(info.url)
    return info


def test_preview_shows_exact_payload_and_queues_nothing(configured) -> None:
    assembly_session(photos=3, steps=2)
    res = _run("share", "--preview", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert (
        out["preview"]
        and len(out["attachments"]) == 4
        and all(a["bytes"] > 0 for a in out["attachments"])
    )
    assert "step-step-1-1.jpg" in res.stderr and "total:" in res.stderr
    assert Outbox().list() == []


def test_yes_without_consent_in_config_refuses_and_sends_nothing(configured) -> None:
    _config(configured.url, consent=False)
    assembly_session(photos=1, steps=1)
    res = _run("share", "--yes", "--json")
    assert res.exit_code == 6
    assert "consent = true" in res.stderr and Outbox().list() == []


def test_share_yes_posts_and_prints_url(configured, roundup) -> None:
    journal = assembly_session(photos=2, steps=1)
    res = _run("share", "--session", journal.id, "--yes", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["state"] == "sent" and out["url"].startswith(configured.url + "issue")
    assert len(roundup.find("issue", idempotency_key=out["key"])) == 1


def test_second_bug_with_same_signature_is_added_to_the_first(configured, roundup) -> None:
    journal = assembly_session(photos=0, steps=1)
    journal.append(
        "verify", ok=False, error="fan rpm 0", error_class="CheckFailed", version_after="1.1.0"
    )
    first = json.loads(
        _run("bug", "Fan stays silent", "--yes", "--json").stdout.strip().splitlines()[-1]
    )
    assert first["state"] == "sent" and first["added_to"] is None
    second = json.loads(
        _run("bug", "No fan here either", "--yes", "--json").stdout.strip().splitlines()[-1]
    )
    assert second["signature"] == first["signature"]
    issue_id = first["url"].rsplit("issue", 1)[1]
    assert second["added_to"] == issue_id
    issue = roundup.get("issue", issue_id)["attributes"]
    assert len(issue["messages"]) == 2 and issue["signature"] == first["signature"]


def test_unknown_session_is_a_clear_error() -> None:
    res = _run("share", "--session", "nope", "--preview")
    assert res.exit_code == 51 and "no session 'nope'" in res.stderr


def test_offline_share_queues_then_outbox_commands_work(tracker, tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/routerkit/"
    tokens.store_token("roundup", dead, tracker.issue_token())
    _config(dead)
    assembly_session(photos=1, steps=1)
    res = _run("share", "--yes", "--json", "--wait", "0")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["state"] == "queued" and "unreachable" in out["error"]
    listed = json.loads(_run("outbox", "list", "--json").stdout)
    assert [i["state"] for i in listed["items"]] == ["queued"]
    key = listed["items"][0]["key"]
    exported = json.loads(_run("outbox", "export", key[:8], str(tmp_path), "--json").stdout)
    assert (tmp_path / key / "body.md").is_file() and exported["ok"]
    # the configured tracker is another one now: the item was previewed for the dead URL,
    # so retry does not send it to the new one
    info = tracker.running()
    tokens.store_token("roundup", info.url, tracker.issue_token())
    _config(info.url)
    Outbox()._update(key, next_at=0)
    retried = json.loads(_run("outbox", "retry", "--json", "--wait", "30").stdout)
    assert retried["sent"] == [] and [i["key"] for i in retried["failed"]] == [key]
    assert "previewed for" in retried["failed"][0]["last_error"]
    # sharing again previews it for the new tracker, which replaces the held item
    again = json.loads(_run("share", "--yes", "--json").stdout.strip().splitlines()[-1])
    assert again["key"] == key and again["state"] == "sent"
    assert _run("outbox", "drop", key[:8], "--yes").exit_code == 0
    assert Outbox().list() == []


def test_login_without_keyring_backend_explains_alternatives(monkeypatch) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    import keyring.core

    keyring.core._keyring_backend = None  # let keyring re-read the environment
    try:
        res = _run(
            "community",
            "login",
            "--to",
            "discourse",
            "--url",
            "https://forum.invalid",
            "--token-stdin",
            input="secret\n",
        )
    finally:
        keyring.core._keyring_backend = None
    assert res.exit_code == 42 and "keyrings.alt" in res.stderr and "secret" not in res.output


def test_community_serve_and_stop(tmp_path) -> None:
    res = _run("community", "serve", "--json")
    try:
        assert res.exit_code == 0, res.output
        info = json.loads(res.stdout)
        import urllib.error
        import urllib.request

        # the web UI answers, with a login form only: anonymous visitors see no reports
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(info["url"], timeout=10)
        assert denied.value.code == 403 and b"__login_name" in denied.value.read()
        assert info["pid"] > 0 and info["url"].startswith("http://127.0.0.1:")
    finally:
        stopped = _run("community", "stop", "--json")
        from toolkit.community.server import LocalTracker

        LocalTracker().remove()
    assert json.loads(stopped.stdout)["stopped"] is True


def test_one_call_library_share_and_bug_for_the_demo(configured) -> None:
    from toolkit.journeys.bug import file_bug
    from toolkit.journeys.share import share_session

    journal = assembly_session(photos=1, steps=1)
    shared = share_session(journal.id)
    assert shared["state"] == "sent" and shared["url"].startswith(configured.url)
    first = file_bug("Demo bug: fan quiet", session_id=journal.id)
    again = file_bug("Demo bug: fan quiet, again", session_id=journal.id)
    assert first["state"] == again["state"] == "sent"
    assert again["added_to"] == first["url"].rsplit("issue", 1)[1]
