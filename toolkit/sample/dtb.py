"""The control DTB of the virtual sample: QEMU's own device tree plus the FIT keys U-Boot trusts.

Debian's qemu_arm64 U-Boot has no device tree of its own (``CONFIG_OF_BOARD=y``): it uses the
one QEMU places at the start of RAM, and passes it on to Linux (``${fdtcontroladdr}`` in
``boot.scr``). So verified boot on the sample is: dump the tree QEMU generates for exactly the
sample's machine options (``-machine virt,dumpdtb=FILE``: it depends on -cpu, -m, -smp), add one
``/signature/key-<name>`` node per trusted FIT key with ``required = "conf"`` (U-Boot then
refuses any configuration not signed by one of them), and start QEMU with ``-dtb``.

The key nodes are written here from the certificate alone (no private key needed, so a
certificate someone else signs with can be trusted); they hold what ``mkimage -K`` writes and
U-Boot's ``rsa_verify_with_keynode`` reads: modulus and R^2 mod n as big-endian 32-bit words,
-n^-1 mod 2^32, the exponent as a 64-bit value, the bit count. ``tests/firmware/build`` checks
them against mkimage's own output.

QEMU 7.2 writes a fresh ``/chosen/rng-seed`` into a ``-dtb`` tree at every reset, but not a
fresh ``kaslr-seed``: the dumped one would be the same at every boot, so it is removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from toolkit import paths
from toolkit.boards import Board
from toolkit.errors import BuildError, ConfigError
from toolkit.firmware.fdt import parse_fdt
from toolkit.firmware.fitkeys import FIT_ALGO, FitKey, trusted_fit_keys
from toolkit.firmware.guest import need_tool

#: Bump when the layout of the generated tree changes, so cached trees are remade.
FORMAT = 1


def rsa_key_cells(key: FitKey) -> dict[str, list[int]]:
    """The numeric properties of ``/signature/key-<name>`` as lists of 32-bit cells."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    public = load_der_public_key(key.public_der())
    if not isinstance(public, rsa.RSAPublicKey):
        raise ConfigError(f"FIT key {key.name!r} ({key.cert}) is not an RSA key")
    numbers = public.public_numbers()
    n, e, bits = numbers.n, numbers.e, public.key_size
    if bits % 32:
        raise ConfigError(f"FIT key {key.name!r}: {bits}-bit modulus is not a multiple of 32")
    words = bits // 32

    def cells(value: int, count: int) -> list[int]:
        return [(value >> (32 * (count - 1 - i))) & 0xFFFFFFFF for i in range(count)]

    return {
        "rsa,num-bits": [bits],
        # Montgomery constants U-Boot's software modular exponentiation uses.
        "rsa,n0-inverse": [(-pow(n, -1, 1 << 32)) % (1 << 32)],
        "rsa,exponent": cells(e, 2),
        "rsa,modulus": cells(n, words),
        "rsa,r-squared": cells(pow(2, 2 * bits, n), words),
    }


def _fdtput(dtb: Path, options: Sequence[str], *args: str) -> None:
    proc = subprocess.run([need_tool("fdtput"), *options, str(dtb), *args],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if proc.returncode != 0:
        what = " ".join([*options, *args[:2]])
        raise BuildError(f"fdtput {what} failed: {proc.stderr.strip().splitlines()[-1:]}")


def add_fit_keys(dtb: Path, keys: Sequence[FitKey]) -> None:
    """Add one required key node per FIT key to ``dtb`` (in place).

    Several keys: ``required-mode = "any"`` (U-Boot's default is "all": a configuration
    would then need a signature from every trusted key).
    """
    for key in keys:
        node = f"/signature/key-{key.name}"
        _fdtput(dtb, ("-p", "-c"), node)
        for prop, value in (("required", "conf"), ("algo", FIT_ALGO), ("key-name-hint", key.name)):
            _fdtput(dtb, ("-t", "s"), node, prop, value)
        for prop, cells in rsa_key_cells(key).items():
            _fdtput(dtb, ("-t", "x"), node, prop, *(f"0x{c:08x}" for c in cells))
    if len(keys) > 1:
        _fdtput(dtb, ("-t", "s"), "/signature", "required-mode", "any")


def pack(dtb: Path) -> None:
    """Shrink ``dtb`` to its contents (``dtc -I dtb -O dtb``), in place.

    QEMU dumps its tree in a 1 MiB buffer and doubles it again when it loads ``-dtb``; U-Boot
    hands that ~2.03 MiB blob to Linux, and arm64 Linux refuses a tree over 2 MiB
    (``MAX_FDT_SIZE``) before its console is up: the boot then hangs silently after
    "Starting kernel ...". Packed, the tree is ~8 KB.
    """
    out = dtb.with_name(dtb.name + ".packed")
    proc = subprocess.run([need_tool("dtc"), "-q", "-I", "dtb", "-O", "dtb", "-o", str(out), str(dtb)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if proc.returncode != 0:
        raise BuildError(f"dtc could not repack {dtb}: {proc.stderr.strip()[-300:]}")
    os.replace(out, dtb)


def dump_machine_dtb(qemu: str, machine_args: Sequence[str], dest: Path) -> None:
    """QEMU's generated tree for ``machine_args`` (which must contain ``-machine``)."""
    args = list(machine_args)
    try:
        i = args.index("-machine") + 1
    except ValueError:
        raise BuildError("machine options without -machine: cannot dump the device tree") from None
    args[i] = f"{args[i]},dumpdtb={dest}"
    proc = subprocess.run([qemu, *args], capture_output=True, text=True, check=False, timeout=60)
    if proc.returncode != 0 or not dest.is_file():
        raise BuildError(
            f"QEMU could not dump its device tree: {(proc.stderr or proc.stdout).strip()[-300:]}"
        )


def control_dtb(
    board: Board, keys: Sequence[FitKey] | None = None, *, qemu: str | None = None
) -> Path:
    """The sample's control DTB with ``keys`` (default: :func:`trusted_fit_keys`) required,
    cached in ``cache_dir()/sample/`` by QEMU binary, machine options and key set."""
    from toolkit.record import atomic_write
    from toolkit.sample.qemu import find_qemu, machine_args

    keys = trusted_fit_keys() if keys is None else list(keys)
    names = [k.name for k in keys]
    if len(set(names)) != len(names):
        raise ConfigError(f"two trusted FIT keys share a name: {', '.join(sorted(names))}")
    qemu = qemu or find_qemu(board)
    stat = os.stat(qemu)
    margs = machine_args(board)
    ident = json.dumps({
        "format": FORMAT, "qemu": [qemu, stat.st_size, stat.st_mtime_ns], "args": margs,
        "keys": [[k.name, k.fingerprint] for k in keys],
    }, sort_keys=True)  # fmt: skip
    target = (
        paths.cache_dir()
        / "sample"
        / f"control-{hashlib.sha256(ident.encode()).hexdigest()[:16]}.dtb"
    )
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rk-dtb-", dir=target.parent) as tmp:
        dtb = Path(tmp) / "control.dtb"
        dump_machine_dtb(qemu, margs, dtb)
        chosen = parse_fdt(dtb.read_bytes()).child("chosen")
        if chosen is not None and "kaslr-seed" in chosen.props:
            _fdtput(dtb, ("-d",), "/chosen", "kaslr-seed")
        add_fit_keys(dtb, keys)
        pack(dtb)
        atomic_write(target, dtb.read_bytes())
    return target
