"""Roundup detector for routerkit's weekly loop (copied into the tracker's ``detectors/``).

Roundup imports this file itself and calls :func:`init`; routerkit never imports it. The
server keeps the loop's rules, so no client can break them:

* a tester adds or removes **only their own vote** (``voters`` is a Multilink of users, so a
  vote added twice is still one vote);
* **one confirmation per tester, report and build**; a second one is refused;
* every new confirmation recounts its report's verdicts (a tester's latest one counts) into
  ``verified`` ("verified fixed by 2 testers on build 1.2.0"); a ``fixed`` verdict resolves the
  report and records ``fixed_in``, a ``still-broken`` one reopens it (status ``chatting``).
  The confirmation's message (the redacted bench context) is added to the report.
"""

from __future__ import annotations

import contextlib
from typing import Any

VERDICTS = ("fixed", "still-broken")


def _reject(text: str) -> Exception:
    from roundup.exceptions import Reject

    return Reject(text)  # type: ignore[no-any-return]


def own_vote_only(db: Any, cl: Any, nodeid: str | None, newvalues: dict[str, Any]) -> None:
    """A user adds or removes only their own vote."""
    if "voters" not in newvalues:
        return
    old = set(cl.get(nodeid, "voters") or []) if nodeid else set()
    new = set(newvalues["voters"] or [])
    if (old ^ new) - {db.getuid()}:
        raise _reject("a tester may add or remove only their own vote")


def one_verdict(db: Any, cl: Any, nodeid: str | None, newvalues: dict[str, Any]) -> None:
    """A confirmation names a report and a known verdict, once per tester and build."""
    if not newvalues.get("issue"):
        raise _reject("a confirmation needs the report it confirms")
    if newvalues.get("verdict") not in VERDICTS:
        raise _reject("the verdict must be 'fixed' or 'still-broken'")
    for cid in cl.filter(None, {"issue": newvalues["issue"], "creator": db.getuid()}):
        if cl.get(cid, "build") == newvalues.get("build"):
            raise _reject("you already confirmed this report on this build")


def summary(verdicts: list[tuple[str, str]]) -> str:
    """'verified fixed by N testers on build X; still broken for M testers on build Y'."""
    counts: dict[tuple[str, str], int] = {}
    for build, verdict in verdicts:
        counts[(verdict, build)] = counts.get((verdict, build), 0) + 1
    parts = []
    for (verdict, build), n in sorted(counts.items()):
        who = f"{n} tester{'' if n == 1 else 's'}"
        if verdict == "fixed":
            parts.append(f"verified fixed by {who} on build {build}")
        else:
            parts.append(f"still broken for {who} on build {build}")
    return "; ".join(parts)


def recount(db: Any, cl: Any, nodeid: str, oldvalues: Any) -> None:
    """Update the report after a new confirmation (see the module docstring)."""
    issue = cl.get(nodeid, "issue")
    latest: dict[str, tuple[str, str]] = {}  # tester -> (build, verdict); later ones win
    for cid in sorted(cl.filter(None, {"issue": issue}), key=int):
        latest[cl.get(cid, "creator")] = (cl.get(cid, "build") or "?", cl.get(cid, "verdict"))
    changes: dict[str, Any] = {"verified": summary(list(latest.values()))}
    verdict = cl.get(nodeid, "verdict")
    with contextlib.suppress(KeyError):  # a tracker without these states: the summary tells
        changes["status"] = db.status.lookup("resolved" if verdict == "fixed" else "chatting")
    if verdict == "fixed":
        changes["fixed_in"] = cl.get(nodeid, "build")
    msg = cl.get(nodeid, "msg")
    messages = list(db.issue.get(issue, "messages") or [])
    if msg and msg not in messages:
        changes["messages"] = [*messages, msg]
    db.issue.set(issue, **changes)


def init(db: Any) -> None:
    db.issue.audit("create", own_vote_only)
    db.issue.audit("set", own_vote_only)
    db.confirmation.audit("create", one_verdict)
    db.confirmation.react("create", recount)
