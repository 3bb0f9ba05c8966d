"""The KeyTool port with asyncssh's key handling (ed25519 generation, parsing
OpenSSH/PEM private keys, deriving the public key)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dc_overview import errors
from dc_overview.ports import KeyMaterial

if TYPE_CHECKING:
    import asyncssh


class AsyncsshKeyTool:
    # asyncssh is imported where it is used: most commands handle no key and start without it
    def generate(self, comment: str) -> KeyMaterial:
        import asyncssh

        key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
        return _material(key)

    def load(self, private_key: str, passphrase: str | None = None) -> KeyMaterial:
        import asyncssh

        try:
            key = asyncssh.import_private_key(private_key, passphrase)
        except (asyncssh.KeyEncryptionError, asyncssh.KeyImportError) as exc:
            encrypted = isinstance(exc, asyncssh.KeyEncryptionError) or "assphrase" in str(exc)
            if not encrypted:
                raise errors.InvalidKey(
                    "private_key", "not a private key in OpenSSH or PEM format", "give the private key, not the .pub file"
                ) from None
            raise errors.InvalidKey(
                "private_key",
                "the key is encrypted" if passphrase is None else "the passphrase does not decrypt the key",
                "give the right passphrase; a decrypted copy is stored with mode 0600",
            ) from None
        except (ValueError, TypeError):
            raise errors.InvalidKey(
                "private_key", "not a private key in OpenSSH or PEM format", "give the private key, not the .pub file"
            ) from None
        return _material(key)


def _material(key: asyncssh.SSHKey) -> KeyMaterial:
    private = key.export_private_key("openssh").decode()
    public = key.export_public_key("openssh").decode().strip()
    return KeyMaterial(private_key=private, public_key=public)
