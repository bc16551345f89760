"""The embedded community tracker: a real Roundup (PyPI ``roundup``) on 127.0.0.1.

``LocalTracker.serve()`` installs the ``classic`` template with the sqlite backend, extends its
schema with what routerkit needs (issue: kind, idempotency_key, signature, board, firmware;
msg and file: idempotency_key), initialises it, creates a ``routerkit`` user and starts
``roundup-server`` on a free loopback port. It returns the URL and pid; the state lives in
``<root>/server.json``.

Locked down (issue #11):

* **No anonymous access.** The classic template lets anyone who reaches the port read every
  issue, file and message and register an account. We replace its anonymous section: the
  Anonymous role gets no permission at all (no Web, REST, XML-RPC or Email Access, no View,
  Search or Register), so the web UI, ``/rest``, ``/xmlrpc``, ``/issueN``, ``/fileN/name``,
  searches and CSV exports answer 401/403 or a login form. Logged-in users (routerkit's own
  ``routerkit`` user with its JWT) are unaffected.
* **No capabilities.** roundup-server refuses to run as root, and it should not: when
  routerkit runs as root the server runs as the system user ``routerkit-community``
  (``useradd --system``) with an empty bounding set, no inheritable or ambient capabilities
  and ``no_new_privs`` (``setpriv``); see :meth:`LocalTracker._run_as` for how it still reaches
  an interpreter under a root-only directory without CAP_DAC_READ_SEARCH. The tracker lives
  under ``/var/lib/routerkit-community/<id>/`` owned by that user.
* **Private files.** roundup-admin and roundup-server run with umask 077, so ``config.ini``
  (the JWT secret), the sqlite database and the server log are 0600 in 0700 directories.

Tokens: Roundup 2.x accepts ``Authorization: Bearer <JWT>`` (HS256, ``iss``/``aud`` = the
tracker's web URL, ``sub`` = user id, ``roles``) when ``[web] jwt_secret`` has >= 32 chars
and PyJWT is importable. We hold the secret (it is in the tracker's config.ini), so routerkit
mints its own short-lived token for the local tracker instead of storing one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from toolkit import paths
from toolkit.errors import ConfigError, PublishError, ToolMissingError
from toolkit.events import NullReporter, Reporter, step
from toolkit.record import atomic_write

SYSTEM_USER = "routerkit-community"
TRACKER_NAME = "routerkit"
TEMPLATE = "classic"

#: Where the classic schema starts granting the Anonymous role; everything from here to the
#: end of schema.py is replaced by _NO_ANONYMOUS.
_ANONYMOUS_SECTION = "#\n# ANONYMOUS USER PERMISSIONS\n#\n"

_NO_ANONYMOUS = """#
# ANONYMOUS USER PERMISSIONS (routerkit)
#
# None. The reports on this tracker come from test benches (console logs, board context);
# only logged-in users may see them. Roundup still maps every request without credentials
# to the "anonymous" user, whose Anonymous role has no permission at all: no Web, Rest,
# Xmlrpc or Email Access, no View, Search or Register. The web UI shows a login form.
"""

# The weekly loop (issue #14): votes (one per tester: a Multilink of users that an auditor
# lets each user change only by themselves), the build a fix was verified in, the summary the
# confirmation reactor keeps ("verified fixed by N testers on build X"), and a build log's
# display name, sample and assembly time (for the weekly leaderboard).
_LOOP_ISSUE_PROPS = (
    'voters=Multilink("user"), fixed_in=String(), verified=String(), display_name=String(), '
    "sample=String(), assembly_seconds=String(), "
)

#: Appended to schema.py: a tester's verdict on a build ("fixed" / "still-broken"), with the
#: message holding the redacted bench context. Users may read and create them, not edit them.
_LOOP_SECTION = """
#
# ROUTERKIT WEEKLY LOOP
#
confirmation = Class(db, "confirmation",
                issue=Link("issue"),
                build=String(),
                verdict=String(),
                board=String(),
                msg=Link("msg"),
                idempotency_key=String())
db.security.addPermissionToRole('User', 'View', 'confirmation')
db.security.addPermissionToRole('User', 'Create', 'confirmation')
"""

#: Copied to tracker/detectors/routerkit_loop.py: the server keeps the loop's rules, so a
#: client (or a second routerkit) cannot count a vote twice or skip the reopen.
_LOOP_DETECTOR = Path(__file__).with_name("loop_detector.py")

# (anchor in the classic schema.py, properties inserted right after it)
_SCHEMA_ADDITIONS = [
    ('FileClass(db, "msg",', "idempotency_key=String(), "),
    ('FileClass(db, "file",', "idempotency_key=String(), sha256=String(), "),
    (
        'IssueClass(db, "issue",',
        "kind=String(), idempotency_key=String(), signature=String(), board=String(), firmware=String(), "
        + _LOOP_ISSUE_PROPS,
    ),
]


@dataclass
class ServerInfo:
    url: str
    pid: int
    port: int
    user: str
    home: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _bin(name: str) -> str:
    """A console script of the running venv (roundup-admin, roundup-server)."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if not found:
        raise ToolMissingError(
            f"{name} is not installed", hint="pip install 'routerkit[community]'"
        )
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalTracker:
    """One local tracker. ``root`` holds server.json (default ``data_dir()/community``)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or paths.data_dir() / "community"
        paths.private_dir(self.root)
        self.state_path = self.root / "server.json"
        self.as_root = os.geteuid() == 0
        if self.as_root:
            ident = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:16]
            self.base = Path("/var/lib") / SYSTEM_USER / ident
        else:
            self.base = self.root
        self.home = self.base / "tracker"
        self.log_path = self.base / "server.log"
        self._prefix: list[str] | None = None

    # --- state ----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.state_path.read_text()))
        except (FileNotFoundError, ValueError):
            return {}

    def _save_state(self, **changes: Any) -> None:
        data = self.state()
        data.update(changes)
        atomic_write(self.state_path, json.dumps(data, indent=2).encode())

    @property
    def installed(self) -> bool:
        return (self.home / "config.ini").is_file() and bool(self.state().get("user_id"))

    # --- install ----------------------------------------------------------------------------

    def _run_as(self) -> list[str]:
        """The prefix that runs roundup's processes unprivileged (empty when not root).

        ``setpriv`` switches to the system user, drops the supplementary groups, empties the
        capability bounding set and the inheritable and ambient sets, and sets no_new_privs.
        After the exec roundup-server holds no capability at all (CapPrm, CapEff, CapBnd and
        CapAmb all zero) and can never gain one back, not even through a setuid binary: a bug
        in the web app then reaches only what the system user may read.

        The interpreter may sit under a directory the system user cannot traverse (pyenv under
        ``/root``, mode 0700). Granting CAP_DAC_READ_SEARCH would let the web app read every
        file on the machine, so instead the processes start in a private mount namespace
        (``unshare --mount``) where each such directory is covered by an empty tmpfs with only
        the entries on the way to the interpreter bound back in (:func:`_jail_script`). The
        host's mounts and modes stay as they are; the namespace dies with the server.
        """
        if not self.as_root:
            return []
        if self._prefix is None:
            import pwd

            pw = pwd.getpwnam(SYSTEM_USER)
            drop = [
                "setpriv",
                f"--reuid={pw.pw_uid}",
                f"--regid={pw.pw_gid}",
                "--clear-groups",
                "--inh-caps=-all",
                "--ambient-caps=-all",
                "--bounding-set=-all",
                "--no-new-privs",
                "--",
            ]
            blocked = _blocked_dirs(_runtime_paths())
            if not blocked:
                self._prefix = drop
            else:
                stash = self.base.parent / ".stash"
                stash.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.chmod(stash, 0o700)
                script = _jail_script(blocked, stash, drop)
                self._prefix = [
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "--",
                    "sh",
                    "-c",
                    script,
                    "routerkit-jail",
                ]
        return self._prefix

    def _ensure_user(self) -> str:
        import pwd

        if not self.as_root:
            return pwd.getpwuid(os.geteuid()).pw_name
        with contextlib.suppress(KeyError):
            pwd.getpwnam(SYSTEM_USER)
            return SYSTEM_USER
        proc = subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                SYSTEM_USER,
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode not in (0, 9):  # 9: created meanwhile by another process
            raise PublishError(
                f"could not create the system user {SYSTEM_USER}: {proc.stderr.strip()}"
            )
        return SYSTEM_USER

    def _admin(self, *args: str, input: str | None = None) -> str:
        proc = subprocess.run(
            [*self._run_as(), _bin("roundup-admin"), "-i", str(self.home), *args],
            capture_output=True,
            text=True,
            input=input,
            cwd=self.base,
            umask=0o077,
        )
        if proc.returncode != 0:
            raise PublishError(
                f"roundup-admin {args[0]} failed: {(proc.stderr or proc.stdout).strip()[-400:]}"
            )
        return proc.stdout

    def install(self, reporter: Reporter | None = None) -> None:
        """Install and initialise the tracker (once; a no-op when it is there)."""
        if self.installed:
            return
        reporter = reporter or NullReporter()
        user = self._ensure_user()
        with step(reporter, "install roundup tracker", str(self.home)):
            shutil.rmtree(self.home, ignore_errors=True)  # a half-done install from a crash
            if self.as_root:
                # /var/lib/routerkit-community: the system user must pass through it to its
                # own directory (mkdir's mode follows root's umask, which may be 077)
                self.base.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(self.base.parent, 0o711)
            paths.private_dir(self.base)
            if self.as_root:
                shutil.chown(self.base, SYSTEM_USER, SYSTEM_USER)
            secret = secrets.token_hex(32)
            # umask: Roundup sets its own umask (default 002) before writing the database
            # and uploaded files; 077 keeps them to the tracker's user
            opts = (
                f"tracker_web=http://127.0.0.1:1/{TRACKER_NAME}/,mail_domain=localhost,"
                f"web_jwt_secret={secret},umask=0o077"
            )
            self._admin("install", TEMPLATE, "sqlite", opts)
            self._extend_schema()
            # no mail server here: notifications would only fail (and leak addresses)
            with contextlib.suppress(FileNotFoundError):
                (self.home / "detectors" / "nosyreaction.py").unlink()
            os.chmod(self.home / "config.ini", 0o600)  # the JWT secret
            self._admin("initialise", secrets.token_urlsafe(24))
            out = self._admin(
                "create",
                "user",
                f"username={TRACKER_NAME}",
                "roles=User",
                "address=routerkit@localhost",
                f"password={secrets.token_urlsafe(24)}",
            )
            user_id = out.strip().splitlines()[-1].strip()
            if not user_id.isdigit():
                raise PublishError(f"unexpected answer from roundup-admin create: {out!r}")
        self._save_state(user_id=user_id, home=str(self.home), user=user)

    def _extend_schema(self) -> None:
        path = self.home / "schema.py"
        text = path.read_text()
        for anchor, props in _SCHEMA_ADDITIONS:
            if text.count(anchor) != 1:
                raise ConfigError(
                    f"roundup's {TEMPLATE} template changed: {anchor!r} not found in {path}"
                )
            text = text.replace(anchor, anchor + "\n                " + props, 1)
        if text.count(_ANONYMOUS_SECTION) != 1:
            raise ConfigError(
                f"roundup's {TEMPLATE} template changed: no anonymous section in {path}"
            )
        text = text[: text.index(_ANONYMOUS_SECTION)] + _NO_ANONYMOUS + _LOOP_SECTION
        if "'Anonymous'" in text or '"Anonymous"' in text:
            raise ConfigError(
                f"{path} still grants the Anonymous role something; refusing to install"
            )
        path.write_text(text)
        self._install_detector()

    def _upgrade_loop(self) -> None:
        """Give a tracker installed before the weekly loop its properties, class and detector
        (Roundup's sqlite backend adds the columns itself when the schema grows)."""
        schema = self.home / "schema.py"
        text = schema.read_text()
        new = text
        if "voters=Multilink" not in new:
            anchor = 'IssueClass(db, "issue",'
            if new.count(anchor) != 1:
                raise ConfigError(f"{schema}: no issue class to extend; refusing to start it")
            new = new.replace(anchor, anchor + "\n                " + _LOOP_ISSUE_PROPS, 1)
        if "ROUTERKIT WEEKLY LOOP" not in new:
            new += _LOOP_SECTION
        if new != text:
            schema.write_text(new)
        detector = self.home / "detectors" / "routerkit_loop.py"
        if not detector.exists() or detector.read_bytes() != _LOOP_DETECTOR.read_bytes():
            self._install_detector()

    def _install_detector(self) -> None:
        """Copy the loop's detector into the tracker, readable by the tracker's user only."""
        dest = self.home / "detectors" / "routerkit_loop.py"
        tmp = dest.with_name(".routerkit_loop.py.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(_LOOP_DETECTOR.read_bytes())
        if self.as_root:
            shutil.chown(tmp, SYSTEM_USER, SYSTEM_USER)
        os.replace(tmp, dest)

    def _lock_down(self) -> None:
        """Bring a tracker installed by an older routerkit to what :meth:`install` makes now
        (before each start; cheap, and a no-op once done): no anonymous permissions, Roundup's
        umask 077, and nothing under the tracker readable by group or others."""
        schema = self.home / "schema.py"
        text = schema.read_text()
        if _NO_ANONYMOUS not in text:
            if text.count(_ANONYMOUS_SECTION) != 1:
                raise ConfigError(f"{schema}: no anonymous section to remove; refusing to start it")
            schema.write_text(text[: text.index(_ANONYMOUS_SECTION)] + _NO_ANONYMOUS)
        config = self.home / "config.ini"
        text = config.read_text()
        new, n = re.subn(r"(?m)^umask = .*$", "umask = 0o077", text)
        if n != 1:
            raise ConfigError(f"{config}: expected exactly one 'umask =' line, found {n}")
        if new != text:
            config.write_text(new)
        for path in [self.base, *self.base.rglob("*")]:
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode) and mode & 0o077:
                os.chmod(path, stat.S_IMODE(mode) & 0o700)

    def _config_web(self, url: str) -> None:
        path = self.home / "config.ini"
        text = path.read_text()
        new, n = re.subn(r"(?m)^web = .*$", f"web = {url}", text)
        if n != 1:
            raise ConfigError(f"{path}: expected exactly one 'web =' line, found {n}")
        path.write_text(new)
        os.chmod(path, 0o600)

    def set_password(self, password: str) -> str:
        """Give the ``routerkit`` user a web password, so a person can log in and read the
        reports (anonymous visitors see nothing). Returns the user name.

        The password goes to the tracker's own Python on stdin, never on a command line
        (which other local users could read in /proc) or into roundup-admin's history file.
        """
        self.install()
        if not password or "\n" in password:
            raise ConfigError("the password must be one non-empty line")
        script = (
            "import sys\n"
            "from roundup import instance\n"
            "from roundup.password import Password\n"
            "db = instance.open(sys.argv[1]).open('admin')\n"
            "db.user.set(sys.argv[2], password=Password(sys.stdin.readline().rstrip('\\n'), config=db.config))\n"
            "db.commit()\n"
            "db.close()\n"
        )
        user_id = str(self.state()["user_id"])
        proc = subprocess.run(
            [*self._run_as(), sys.executable, "-c", script, str(self.home), user_id],
            input=password + "\n",
            capture_output=True,
            text=True,
            cwd=self.base,
            umask=0o077,
        )
        if proc.returncode != 0:
            raise PublishError(f"could not set the password: {proc.stderr.strip()[-400:]}")
        return TRACKER_NAME

    def jwt_secret(self) -> str:
        import configparser

        cfg = configparser.ConfigParser(interpolation=None)
        cfg.read(self.home / "config.ini")
        return cfg.get("web", "jwt_secret")

    # --- run --------------------------------------------------------------------------------

    def running(self) -> ServerInfo | None:
        """The server if its recorded pid is alive and is a roundup-server."""
        st = self.state()
        pid = st.get("pid")
        if not pid or not _is_roundup(int(pid)):
            return None
        return ServerInfo(st["url"], int(pid), int(st["port"]), st.get("user", ""), st["home"])

    def serve(self, reporter: Reporter | None = None, *, timeout: float = 30.0) -> ServerInfo:
        """Install if needed, then start roundup-server (or return the running one)."""
        from filelock import FileLock

        reporter = reporter or NullReporter()
        # two `serve`s at once (a share auto-starting the tracker while the tester runs
        # `community serve`) must not install twice or start two servers
        with FileLock(str(self.root / "serve.lock")):
            return self._serve_locked(reporter, timeout)

    def _serve_locked(self, reporter: Reporter, timeout: float) -> ServerInfo:
        info = self.running()
        if info is not None:
            return info
        self.install(reporter)
        self._lock_down()
        self._upgrade_loop()  # after: the lock-down rewrites the end of schema.py
        last = ""
        previous = self.state().get("port")
        for attempt in range(3):  # another process may grab the port between probe and bind
            # keep the last port when it is free, so URLs (and queued items) stay valid
            port = (
                int(previous)
                if attempt == 0 and previous and _port_free(int(previous))
                else free_port()
            )
            url = f"http://127.0.0.1:{port}/{TRACKER_NAME}/"
            self._config_web(url)
            with step(reporter, "start roundup-server", url):
                log = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    proc = subprocess.Popen(
                        [
                            *self._run_as(),
                            _bin("roundup-server"),
                            "-n",
                            "127.0.0.1",
                            "-p",
                            str(port),
                            f"{TRACKER_NAME}={self.home}",
                        ],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        cwd=self.base,
                        start_new_session=True,
                        umask=0o077,
                    )
                finally:
                    os.close(log)
                if self._wait_up(proc, url, timeout):
                    self._save_state(url=url, pid=proc.pid, port=port)
                    info = self.running()
                    assert info is not None
                    return info
            last = self.log_tail()
        raise PublishError(f"roundup-server did not start: {last}")

    def _wait_up(self, proc: subprocess.Popen[bytes], url: str, timeout: float) -> bool:
        import urllib.error
        import urllib.request

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(url + "rest/", timeout=2):
                    return True
            except urllib.error.HTTPError:
                return True  # it answers; a 4xx is fine here
            except OSError:
                time.sleep(0.1)
        proc.kill()
        proc.wait()
        return False

    def log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(
                self.log_path.read_text(errors="replace").strip().splitlines()[-lines:]
            )
        except FileNotFoundError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the server started by :meth:`serve` (by its recorded pid only)."""
        info = self.running()
        if info is None:
            return False
        os.kill(info.pid, signal.SIGTERM)
        end = time.monotonic() + timeout
        while time.monotonic() < end and _is_roundup(info.pid):
            _reap(info.pid)
            time.sleep(0.05)
        if _is_roundup(info.pid):
            os.kill(info.pid, signal.SIGKILL)
            _reap(info.pid)
        self._save_state(pid=None)
        return True

    def remove(self) -> None:
        """Stop and delete the tracker (tests; ``community serve --reset``)."""
        self.stop()
        shutil.rmtree(self.base if self.as_root else self.home, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            self.state_path.unlink()

    def add_user(self, username: str) -> str:
        """Create (or find) another tester's account; return its user id. Lets one local
        tracker hold a small community (the weekly loop's tests, a bench shared by testers);
        the account has no password until :meth:`set_password`-style setup gives it one."""
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,40}", username):
            raise ConfigError(f"bad user name {username!r}: letters, digits, . _ - only")
        self.install()
        for line in self._admin("list", "user", "username").splitlines():
            uid, _, name = line.partition(":")
            if name.strip() == username and uid.strip().isdigit():
                return uid.strip()
        out = self._admin(
            "create",
            "user",
            f"username={username}",
            "roles=User",
            f"address={username}@localhost",
            f"password={secrets.token_urlsafe(24)}",
        )
        return out.strip().splitlines()[-1].strip()

    def issue_token(self, lifetime: float = 3600.0, *, user_id: str | None = None) -> str:
        """A JWT for the ``routerkit`` user (or ``user_id``), signed with the tracker's own
        secret."""
        import jwt

        st = self.state()
        url = st.get("url")
        if not url:
            raise PublishError(
                "the local tracker has never run", hint="`routerkit community serve`"
            )
        now = int(time.time())
        claims = {
            "sub": str(user_id or st["user_id"]),
            "iss": url,
            "aud": url,
            "iat": now,
            "exp": now + int(lifetime),
            "roles": ["user"],
        }
        return str(jwt.encode(claims, self.jwt_secret(), algorithm="HS256"))


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as roundup-server binds
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _is_roundup(pid: int) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        _reap(pid)
        return False
    return b"roundup-server" in cmd


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _runtime_paths() -> list[Path]:
    """What roundup's processes must reach: the interpreter, the venv, roundup, PyJWT."""
    import importlib.util

    found = [Path(sys.prefix), Path(sys.base_prefix), Path(os.path.realpath(sys.executable)).parent]
    for module in ("roundup", "jwt"):
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.origin:
            found.append(Path(spec.origin).parent)
    return found


def _blocked_dirs(targets: list[Path]) -> dict[Path, set[str]]:
    """Directories on the way to ``targets`` that others may not traverse, each with the names
    inside it that lead to a target."""
    blocked: dict[Path, set[str]] = {}
    for target in targets:
        parts = target.resolve().parts
        for i in range(1, len(parts)):
            parent = Path(*parts[:i])
            if parent.stat().st_mode & 0o001 == 0:
                blocked.setdefault(parent, set()).add(parts[i])
    return blocked


def _jail_script(blocked: dict[Path, set[str]], stash: Path, command: list[str]) -> str:
    """A ``sh -c`` script for a fresh mount namespace: cover each blocked directory with an
    empty tmpfs (0711: enter, not list) and bind back only the needed entries, then exec
    ``command`` followed by the script's arguments."""
    import shlex

    if any(parent in stash.parents for parent in blocked):
        # covering that directory would hide the stash and the originals bound into it
        raise ConfigError(f"{stash} lies inside a directory the tracker's user cannot enter")
    q = shlex.quote
    lines = ["set -e", f"mount -t tmpfs -o mode=0700 routerkit-stash {q(str(stash))}"]
    # shallow first: a blocked directory inside another one is bound back, then covered itself
    for n, parent in enumerate(sorted(blocked, key=lambda p: len(p.parts))):
        keep = stash / str(n)
        lines += [
            f"mkdir {q(str(keep))}",
            f"mount --bind {q(str(parent))} {q(str(keep))}",
            f"mount -t tmpfs -o mode=0711 routerkit-jail {q(str(parent))}",
        ]
        for name in sorted(blocked[parent]):
            src, dst = keep / name, parent / name
            make = "mkdir" if (parent / name).is_dir() else "touch"
            lines += [f"{make} {q(str(dst))}", f"mount --bind {q(str(src))} {q(str(dst))}"]
    lines += [f"umount --lazy {q(str(stash))}", "exec " + " ".join(q(c) for c in command) + ' "$@"']
    return "\n".join(lines)
