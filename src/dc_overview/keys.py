"""Use cases for the fleet's SSH keys. Private keys are written to 0600
files in the data dir and never leave through any front end."""

from __future__ import annotations

from . import errors
from .domain import SshKey, check_name, fingerprint
from .ports import Deps, KeyMaterial


async def list_keys(deps: Deps) -> list[SshKey]:
    return deps.storage.list_keys()


async def show_key(deps: Deps, name: str) -> SshKey:
    key = deps.storage.get_key(name)
    if key is None:
        raise errors.KeyNotFound(name)
    return key


async def add_key(deps: Deps, name: str, private_key: str, passphrase: str | None = None) -> SshKey:
    """Store an existing private key (decrypted with ``passphrase`` if it is encrypted)."""
    check_name(name)
    material = deps.keys.load(private_key, passphrase)
    return _store(deps, name, material)


async def generate_key(deps: Deps, name: str, comment: str | None = None) -> SshKey:
    """A new ed25519 key; give its public key to the workers' authorized_keys."""
    check_name(name)
    return _store(deps, name, deps.keys.generate(comment or f"dc-overview:{name}"))


async def remove_key(deps: Deps, name: str) -> SshKey:
    with deps.storage.transaction():
        key = await show_key(deps, name)
        users = [s.name for s in deps.storage.list_servers() if s.ssh_key == name]
        if users:
            raise errors.KeyInUse(name, users)
        assert key.id is not None
        deps.storage.remove_key(key.id)
    deps.storage.delete_private_key(key.private_key_path)
    return key


def _store(deps: Deps, name: str, material: KeyMaterial) -> SshKey:
    if deps.storage.get_key(name) is not None:
        raise errors.DuplicateKey(name)
    path = deps.storage.write_private_key(name, material.private_key)
    key = SshKey(
        name=name,
        public_key=material.public_key,
        fingerprint=fingerprint(material.public_key),
        private_key_path=str(path),
    )
    try:
        with deps.storage.transaction():
            return deps.storage.add_key(key)
    except BaseException:
        deps.storage.delete_private_key(str(path))
        raise
