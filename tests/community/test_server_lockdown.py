"""The local tracker is locked down: nothing for anonymous visitors, no capabilities, private files."""

from __future__ import annotations

import os
import stat
import xmlrpc.client
from pathlib import Path

import httpx
import pytest

from toolkit.community.outbox import Attachment, Item
from toolkit.community.server import LocalTracker, _blocked_dirs, _runtime_paths
from toolkit.errors import ConfigError
from toolkit.events import NullReporter

TITLE = "Planted title 7f3c9e anonymous must not see"
BODY = "planted body b81d44: the fan of bench 12 stays silent"
FILE_TEXT = b"planted attachment 5ea0d2 console log\n"
PLANTED = ("7f3c9e", "b81d44", "5ea0d2")


@pytest.fixture(scope="module")
def posted(tracker: LocalTracker, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A report with an attachment, posted by the routerkit user through the REST API."""
    from toolkit.community.publishers.roundup import RoundupPublisher

    info = tracker.running()
    assert info is not None, tracker.log_tail()
    att = tmp_path_factory.mktemp("att") / "console.txt"
    att.write_bytes(FILE_TEXT)
    key = "rk-lockdown-" + os.urandom(4).hex()
    item = Item(
        key,
        "roundup",
        "bug",
        TITLE,
        {"body": BODY, "fields": {"kind": "bug"}},
        [Attachment("console.txt", att, len(FILE_TEXT), "0" * 64, "text/plain")],
    )
    pub = RoundupPublisher(info.url, tracker.issue_token())
    try:
        remote = pub.publish(item, NullReporter())
        issue = pub.get("issue", remote["id"])["attributes"]
    finally:
        pub.close()
    return {
        "url": info.url,
        "issue": remote["id"],
        "file": issue["files"][0]["id"],
        "msg": issue["messages"][0]["id"],
    }


def _anonymous_pages(p: dict[str, str]) -> list[str]:
    i, f, m = p["issue"], p["file"], p["msg"]
    return [
        "",
        "index",
        f"issue{i}",
        f"issue{i}?@template=item",
        f"file{f}",
        f"file{f}/console.txt",
        f"msg{m}",
        f"msg{m}/content",
        "issue",
        "issue?@columns=id,title&@sort=-id",
        "issue?@search_text=silent&@columns=id,title",
        "issue?@filter=title&title=Planted&@columns=title",
        "issue?@action=export_csv&@columns=id,title,messages,files",
        "file?@action=export_csv&@columns=id,name,content",
        "msg?@action=export_csv&@columns=id,content",
        "user?@template=register",
        "user",
        "rest/",
        "rest/data/issue",
        f"rest/data/issue/{i}",
        f"rest/data/issue/{i}/title",
        "rest/data/file",
        f"rest/data/file/{f}",
        f"rest/data/file/{f}/binary_content",
        f"rest/data/msg/{m}",
        f"rest/data/msg/{m}/binary_content",
        "rest/data/issue?title=Planted&@fields=title",
    ]


def test_anonymous_visitors_get_no_report_content(posted: dict[str, str]) -> None:
    url = posted["url"]
    assert url.startswith("http://127.0.0.1:")
    headers = {"Origin": url.split("/routerkit")[0], "Referer": url, "X-Requested-With": "rest"}
    with httpx.Client(base_url=url, timeout=20, headers=headers) as client:
        for page in _anonymous_pages(posted):
            resp = client.get(page)
            for secret in PLANTED:
                assert secret not in resp.text, f"/{page} showed {secret} to an anonymous visitor"
            denied = resp.status_code in (401, 403) or "__login_name" in resp.text
            assert denied, (
                f"/{page}: HTTP {resp.status_code} without a login form: {resp.text[:300]}"
            )


def test_anonymous_xmlrpc_is_refused(posted: dict[str, str]) -> None:
    proxy = xmlrpc.client.ServerProxy(posted["url"] + "xmlrpc", allow_none=True)
    for call in (
        lambda: proxy.display(f"issue{posted['issue']}", "title"),
        lambda: proxy.filter("issue", None, {}),
        lambda: proxy.display(f"file{posted['file']}", "content"),
    ):
        with pytest.raises((xmlrpc.client.Fault, xmlrpc.client.ProtocolError)) as err:
            call()
        assert not any(s in str(err.value) for s in PLANTED)


def test_the_logged_in_user_still_reads_the_report(
    tracker: LocalTracker, posted: dict[str, str]
) -> None:
    """The control for the test above: the same server does hand the content to its user."""
    url = posted["url"]
    headers = {
        "Authorization": f"Bearer {tracker.issue_token()}",
        "Origin": url.split("/routerkit")[0],
        "Referer": url,
        "X-Requested-With": "rest",
    }
    with httpx.Client(base_url=url, timeout=20, headers=headers) as client:
        assert TITLE in client.get(f"rest/data/issue/{posted['issue']}").text
        assert (
            FILE_TEXT.decode() in client.get(f"rest/data/file/{posted['file']}/binary_content").text
        )


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def test_server_holds_no_capability_and_is_not_root(tracker: LocalTracker) -> None:
    info = tracker.running()
    assert info is not None
    st = _status(info.pid)
    assert st["Uid"].split()[0] != "0" and set(st["Uid"].split()) == {st["Uid"].split()[0]}
    for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(st[caps], 16) == 0, f"{caps} = {st[caps]}"
    if os.geteuid() == 0:
        assert st["NoNewPrivs"] == "1"
        assert st["Groups"] == ""


@pytest.mark.skipif(
    os.geteuid() != 0, reason="the mount namespace is only used when routerkit runs as root"
)
def test_root_only_directories_show_the_server_only_the_interpreter(tracker: LocalTracker) -> None:
    info = tracker.running()
    assert info is not None
    blocked = _blocked_dirs(_runtime_paths())
    if not blocked:
        pytest.skip("the interpreter is not under a root-only directory here")
    for parent, needed in blocked.items():
        # /proc/<pid>/root is the server's own view of the file system
        seen = set(os.listdir(f"/proc/{info.pid}/root{parent}"))
        assert seen == needed, f"{parent}: the server sees {sorted(seen)}"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_tracker_secret_database_and_log_are_private(
    tracker: LocalTracker, posted: dict[str, str]
) -> None:
    assert _mode(tracker.root) == 0o700
    assert _mode(tracker.base) == 0o700
    assert _mode(tracker.home) == 0o700
    assert _mode(tracker.home / "config.ini") == 0o600
    assert _mode(tracker.log_path) == 0o600
    db = tracker.home / "db"
    assert _mode(db) == 0o700
    for path in db.rglob("*"):
        assert _mode(path) & 0o077 == 0, f"{path} is {oct(_mode(path))}"
    assert _mode(tracker.state_path) == 0o600


def test_a_person_logs_in_with_the_password_and_reads_the_report(
    tracker: LocalTracker, posted: dict[str, str]
) -> None:
    url = posted["url"]
    user = tracker.set_password("correct horse battery")
    origin = url.split("/routerkit")[0]
    with httpx.Client(
        base_url=url, timeout=20, headers={"Origin": origin, "Referer": url}
    ) as client:
        assert TITLE not in client.get(f"issue{posted['issue']}").text
        wrong = client.post(
            "", data={"__login_name": user, "__login_password": "wrong", "@action": "login"}
        )
        assert TITLE not in client.get(f"issue{posted['issue']}").text, wrong.status_code
        client.post(
            "",
            data={
                "__login_name": user,
                "__login_password": "correct horse battery",
                "@action": "login",
            },
        )
        page = client.get(f"issue{posted['issue']}")
        assert page.status_code == 200 and TITLE in page.text
        assert FILE_TEXT in client.get(f"file{posted['file']}/console.txt").content


def test_a_tracker_installed_by_an_older_routerkit_is_locked_down_on_start(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from toolkit.community.server import _ANONYMOUS_SECTION, _NO_ANONYMOUS, TEMPLATE, _bin

    old = LocalTracker(tmp_path_factory.mktemp("old-tracker"))
    old.serve()
    try:
        old.stop()
        # what an older routerkit left: the classic anonymous grants, Roundup's umask 002, 0644 files
        share = (
            Path(_bin("roundup-admin")).parent.parent / "share" / "roundup" / "templates" / TEMPLATE
        )
        classic = (share / "schema.py").read_text()
        schema = old.home / "schema.py"
        schema.write_text(
            schema.read_text().replace(_NO_ANONYMOUS, classic[classic.index(_ANONYMOUS_SECTION) :])
        )
        config = old.home / "config.ini"
        config.write_text(config.read_text().replace("umask = 0o077", "umask = 0o2"))
        for path in [config, *(old.home / "db").iterdir()]:
            os.chmod(path, 0o644)
        os.chmod(old.home, 0o755)

        info = old.serve()
        assert "addPermissionToRole('Anonymous'" not in schema.read_text()
        assert "umask = 0o077" in config.read_text()
        for path in [old.home, config, *(old.home / "db").iterdir()]:
            assert _mode(path) & 0o077 == 0, path
        resp = httpx.get(info.url + "rest/data/issue", timeout=20)
        assert resp.status_code == 403
        assert httpx.get(info.url, timeout=20).status_code == 403
    finally:
        old.remove()


def test_community_password_command_reads_stdin_and_names_the_login() -> None:
    import json

    from click.testing import CliRunner

    from toolkit.cli import root

    res = CliRunner().invoke(
        root, ["community", "password", "--password-stdin", "--json"], input="s3cret pass\n"
    )
    try:
        assert res.exit_code == 0, res.output
        out = json.loads(res.stdout)
        assert out["user"] == "routerkit" and "s3cret" not in res.output
    finally:
        LocalTracker().remove()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for the mount namespace")
def test_jail_reaches_nested_root_only_directories_and_hides_the_rest(tmp_path: Path) -> None:
    import pwd
    import subprocess

    from toolkit.community.server import _jail_script

    top = tmp_path / "top"
    target = top / "inner" / "venv"
    target.mkdir(parents=True)
    (target / "python").write_text("interpreter\n")
    (top / "secret.txt").write_text("root only\n")
    (top / "inner" / "secret2.txt").write_text("root only\n")
    for d in (top, top / "inner"):
        os.chmod(d, 0o700)
    os.chmod(
        tmp_path, 0o755
    )  # pytest's own directories above are 0700: the tested tree starts here
    blocked = {
        p: n for p, n in _blocked_dirs([target]).items() if tmp_path in p.parents or p == tmp_path
    }
    assert set(blocked) == {top, top / "inner"}
    nobody = pwd.getpwnam("nobody")
    drop = [
        "setpriv",
        f"--reuid={nobody.pw_uid}",
        f"--regid={nobody.pw_gid}",
        "--clear-groups",
        "--",
    ]
    full = _blocked_dirs([target])
    with pytest.raises(ConfigError):  # a stash under a covered directory would vanish
        _jail_script(full, tmp_path / "stash", drop)
    stash = Path("/var/lib/routerkit-community/.stash")  # where the server's stash lives
    stash.mkdir(mode=0o700, parents=True, exist_ok=True)
    script = _jail_script(full, stash, drop)
    cmd = "cat {0}/python; ls -a {1}; ls -a {2}; cat {1}/secret.txt 2>/dev/null || echo denied"
    proc = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            script,
            "jail",
            "sh",
            "-c",
            cmd.format(target, top, top / "inner"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split()
    assert lines[0] == "interpreter" and "secret.txt" not in lines and "secret2.txt" not in lines
    assert lines[-1] == "denied"
