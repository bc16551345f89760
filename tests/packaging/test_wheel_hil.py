"""The wheel carries what it needs: built from the sources, installed into a fresh venv outside
the checkout, it runs the journey from a directory that is not the checkout.

For every shipped board, one virtual sample boots (``sample up --board``); the serial flash and
the pytest plugin's example run on that same sample. ROUTERKIT_DATA/CONFIG are the test's own (tests/conftest.py), the cache is
the shared test cache (guest packages are not downloaded again).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.hil, pytest.mark.timeout(1500)]

CHECKOUT = Path(__file__).resolve().parents[2]
#: The board profiles the wheel must carry: every one the checkout ships.
BOARDS = sorted(p.stem for p in (CHECKOUT / "firmware" / "boards").glob("*.toml"))
ON_DEVICE_PROGRAMS = (
    "init",
    "sbin/fwinfo",
    "sbin/rk-settings",
    "sbin/sysupgrade",
    "usr/bin/selftest",
)
# What python -m build prints when the metadata uses a form setuptools is phasing out.
DEPRECATION_MARKERS = (
    "Deprecat",
    "SetuptoolsWarning",
    "is not a valid SPDX",
    "License classifiers",
)


def _copy_sources(dest: Path) -> None:
    """The files a build reads, copied as they are (the data symlinks stay symlinks), so the
    build leaves nothing in the shared checkout."""
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(CHECKOUT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("toolkit", "firmware", "assembly_guide"):
        shutil.copytree(CHECKOUT / name, dest / name, symlinks=True, ignore=ignore)


def _run(
    args: list[str], cwd: Path, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    print(f"$ {' '.join(args)}  -> {proc.returncode}")
    print(proc.stdout[-3000:])
    print(proc.stderr[-3000:], file=sys.stderr)
    return proc


def _json(proc: subprocess.CompletedProcess[str]) -> dict:
    assert proc.returncode == 0, proc.stderr[-2000:] or proc.stdout[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_wheel_installed_outside_the_checkout_runs_the_journey(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _copy_sources(src)
    dist = tmp_path / "dist"
    build = _run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(src)],
        cwd=tmp_path,
        env=dict(os.environ),
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    log = build.stdout + build.stderr
    assert not [m for m in DEPRECATION_MARKERS if m in log], log[-3000:]
    [wheel] = dist.glob("routerkit-*.whl")

    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        modes = {i.filename: i.external_attr >> 16 for i in zf.infolist()}
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in metadata
    for board in BOARDS:
        assert f"toolkit/_data/firmware/boards/{board}.toml" in names
        assert f"toolkit/_data/assembly_guide/{board}/guide.yaml" in names
    assert "toolkit/_data/assembly_guide/es-virt/img/01-parts.svg" in names
    assert "toolkit/_data/firmware/keys/test_id_ed25519.pub" in names
    for rel in ON_DEVICE_PROGRAMS:
        assert modes[f"toolkit/_data/firmware/rootfs/{rel}"] & 0o111, rel

    venv = tmp_path / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    assert (
        _run(
            [base, "-m", "venv", str(venv)], cwd=tmp_path, env=dict(os.environ), timeout=120
        ).returncode
        == 0
    )
    # With its dependencies (pip's configured indexes and wheel cache keep it quick).
    install = _run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
        cwd=tmp_path,
        env=dict(os.environ),
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-2000:]

    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    rk = str(venv / "bin" / "routerkit")

    where = _run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import toolkit, toolkit.resources as r; print(toolkit.__file__); print(r.rootfs_dir())",
        ],
        cwd=work,
        env=env,
        timeout=60,
    )
    toolkit_file, rootfs = (Path(line) for line in where.stdout.split())
    assert toolkit_file.is_relative_to(venv) and rootfs.is_relative_to(venv)
    assert not toolkit_file.is_relative_to(CHECKOUT)
    for rel in ON_DEVICE_PROGRAMS:
        assert os.access(rootfs / rel, os.X_OK), rel

    lint = _json(_run([rk, "guide", "lint", "--json"], cwd=work, env=env, timeout=60))
    assert lint["ok"] and len(lint["files"]) == len(BOARDS)
    assert all(Path(f).is_relative_to(venv) for f in lint["files"])
    boards = _json(_run([rk, "board", "list", "--json"], cwd=work, env=env, timeout=60))
    assert [(b["id"], b["origin"]) for b in boards["boards"]] == [(b, "bundled") for b in BOARDS]
    for board in BOARDS:
        assert _run([rk, "board", "lint", board], cwd=work, env=env, timeout=60).returncode == 0
        _journey(rk, venv, work, env, board)


def _journey(rk: str, venv: Path, work: Path, env: dict[str, str], board: str) -> None:
    """Build, boot, flash over serial and run the pytest plugin's examples on one board."""

    out = work / "out"
    built = _json(
        _run(
            [
                rk,
                "firmware",
                "build",
                "--version",
                "9.9.9",
                "--board",
                board,
                "--out",
                str(out),
                "--json",
            ],
            cwd=work,
            env=env,
            timeout=900,
        )
    )
    image = out / f"{board}-9.9.9.img"
    assert image.is_file(), built

    up = _json(
        _run(
            [rk, "sample", "up", "--name", board, "--board", board, "--wait", "uboot", "--json"],
            cwd=work,
            env=env,
            timeout=300,
        )
    )
    try:
        assert up["ok"], up
        flashed = _json(
            _run(
                [
                    rk,
                    "flash",
                    str(image),
                    "--target",
                    board,
                    "--via",
                    "serial",
                    "--path",
                    "tftp",
                    "--json",
                    "--yes",
                ],  # fmt: skip
                cwd=work,
                env=env,
                timeout=900,
            )
        )
        assert flashed["ok"] and flashed.get("version_after", "9.9.9") == "9.9.9", flashed

        examples = work / f"examples-{board}"
        examples.mkdir()
        shutil.copy2(
            CHECKOUT / "examples" / "test_example_hil.py", examples / "test_example_hil.py"
        )
        # The plugin comes in through the wheel's pytest11 entry point, as for any user.
        # (`-p toolkit.pytest_plugin` on top of it would register the module twice; `-p routerkit`
        # is the explicit form, checked below with autoloading off.)
        example = _run(
            [
                str(venv / "bin" / "python"),
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "--routerkit-target",
                board,
                "-q",
                "-rA",
                str(examples),
            ],
            cwd=work,
            env=env,
            timeout=900,
        )
        assert example.returncode == 0, example.stdout[-3000:]
        assert "4 passed, 1 skipped" in example.stdout, example.stdout[-3000:]
        explicit = _run(
            [str(venv / "bin" / "python"), "-m", "pytest", "-p", "routerkit", "--help"],
            cwd=work,
            env={**env, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
            timeout=120,
        )
        assert explicit.returncode == 0 and "--routerkit-target" in explicit.stdout
    finally:
        down = _run(
            [rk, "sample", "down", "--name", board, "--json"], cwd=work, env=env, timeout=120
        )
    assert _json(down)["ok"]
