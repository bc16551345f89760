"""``routerkit keys``: image signing keys and the keyring of trusted public keys."""

from __future__ import annotations

import stat
from pathlib import Path

import click

from toolkit.cli._app import App, emit, output_options


@click.group()
def keys() -> None:
    """Manage image signing keys (signify/usign format) and trusted public keys.

    \b
    Private keys live in files readable only by you (0600); public keys you trust live in a
    keyring directory. Images verify only against trusted keys.
    \b
    Examples:
      routerkit keys generate release-2026
      routerkit keys export release-2026 --out release-2026.pub
      routerkit keys trust ci-nightly.pub
      routerkit keys export release-2026 --fit --out release-2026.fit.crt
      routerkit keys trust release-2026.fit.crt     # U-Boot on your samples boots their FITs
      routerkit keys list
    """


@keys.command()
@click.argument("name")
@click.option("--comment", help="Free text stored in the key files' comment line.")
@click.option(
    "--no-trust", is_flag=True, help="Do not add the public key to this machine's keyring."
)
@output_options
def generate(name: str, comment: str | None, no_trust: bool) -> None:
    """Create the key pair NAME (never overwrites an existing key)."""
    from toolkit.firmware import keys as keyring

    key = keyring.generate(name, comment=comment, trust=not no_trust)
    sec = keyring.keys_dir() / f"{name}.sec"
    result = {
        "ok": True,
        "name": name,
        "keyid": key.keyid,
        "secret_key": str(sec),
        "public_key": str(keyring.keys_dir() / f"{name}.pub"),
        "trusted": not no_trust,
    }
    emit(
        result,
        f"generated key {name} ({key.keyid})\n  secret: {sec} (0600, keep it private)\n"
        f"  public: {result['public_key']}"
        + ("\n  trusted on this machine" if not no_trust else ""),
    )


@keys.command(name="list")
@output_options
def list_keys() -> None:
    """List your private keys and every trusted public key."""
    from toolkit.firmware import keys as keyring

    secrets = []
    for name, key, path in keyring.secret_keys():
        mode = stat.S_IMODE(path.stat().st_mode)
        secrets.append(
            {
                "name": name,
                "keyid": key.keyid if key else None,
                "path": str(path),
                "mode": f"{mode:04o}",
                "readable": key is not None,
                "dev": name == keyring.DEV_KEY,
            }
        )
    trusted = [
        {
            "keyid": k.keyid,
            "path": str(k.path),
            "source": k.source,
            "dev": k.is_dev,
            "comment": k.public.comment,
        }
        for k in keyring.trusted_keys().values()
    ]

    def human(app: App) -> None:
        click.echo("private keys:" if secrets else "private keys: none")
        for s in secrets:
            warn = "" if s["mode"] == "0600" else f"  ! mode {s['mode']}, should be 0600"
            label = " (DEVELOPMENT key, this machine only)" if s["dev"] else ""
            click.echo(f"  {s['name']:<20} {s['keyid'] or 'UNREADABLE'}{label}{warn}")
        click.echo("trusted public keys:" if trusted else "trusted public keys: none")
        for t in trusted:
            label = " DEVELOPMENT" if t["dev"] else ""
            click.echo(f"  {t['keyid']}  {t['source']:<7}{label}  {t['path']}")

    emit({"ok": True, "secret_keys": secrets, "trusted_keys": trusted}, human)


@keys.command()
@click.argument("name")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file.")
@click.option(
    "--fit",
    "fit_cert",
    is_flag=True,
    help="Export the key's FIT certificate (RSA, what U-Boot checks at boot) instead.",
)
@output_options
def export(name: str, out: Path | None, fit_cert: bool) -> None:
    """Print (or write) the public key NAME in signify format, to hand to others.

    With --fit: the X.509 certificate of the RSA twin that signs the FIT configurations of
    images signed by NAME, for the control DTB of the boards that should boot them."""
    from toolkit.firmware import keys as keyring
    from toolkit.record import atomic_write

    if fit_cert:
        from toolkit.firmware.fitkeys import fit_key

        keyring.export_public(name)  # the signing key must exist: never invent a FIT key
        cert = fit_key(name).cert.read_bytes()
        if out is not None:
            atomic_write(out, cert)
        emit(
            {
                "ok": True,
                "name": name,
                "fit_certificate": cert.decode(),
                "path": str(out) if out else None,
            },
            f"wrote {out} (FIT certificate of {name})" if out else cert.decode().rstrip("\n"),
        )
        return
    public = keyring.export_public(name)
    text = public.to_bytes()
    if out is not None:
        atomic_write(out, text)
    result = {
        "ok": True,
        "keyid": public.keyid,
        "public_key": text.decode(),
        "path": str(out) if out else None,
    }
    emit(result, f"wrote {out} ({public.keyid})" if out else text.decode().rstrip("\n"))


@keys.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", help="File name in the keyring (default: the key id).")
@output_options
def trust(file: Path, name: str | None) -> None:
    """Trust the public key FILE (signify/usign .pub) for verifying images.

    A FIT certificate (NAME.fit.crt from `keys export --fit`) is trusted for verified boot
    instead: the samples this machine starts let U-Boot boot FITs signed by that key. Its name
    must be the signer's key name (default: FILE's name without .fit.crt)."""
    from toolkit.firmware import keys as keyring
    from toolkit.firmware.signify import PublicKey

    data = file.read_bytes()
    if data.lstrip().startswith(b"-----BEGIN CERTIFICATE-----"):
        from toolkit.firmware.fitkeys import CERT_SUFFIX, trust_fit_certificate

        stem = file.name[: -len(CERT_SUFFIX)] if file.name.endswith(CERT_SUFFIX) else file.stem
        path = trust_fit_certificate(data, name or stem, str(file))
        emit(
            {"ok": True, "fit_certificate": True, "name": name or stem, "path": str(path)},
            f"trusted FIT certificate {name or stem} for verified boot ({path}); "
            "samples started from now on boot FITs it signed",
        )
        return
    public = PublicKey.from_bytes(data, str(file))
    path = keyring.trust_key(public, name=name)
    emit(
        {"ok": True, "keyid": public.keyid, "path": str(path)},
        f"trusted key {public.keyid} ({path})",
    )
