"""Integrity of model artifacts: a SHA-256 per file and one over the whole folder, checked before every load."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from fs_dagster.core.errors import FeatureStoreError

_CHUNK = 1 << 20


class ModelIntegrityError(FeatureStoreError):
    """A model artifact changed, vanished or gained files since it was registered; the message names the file."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def hash_folder(folder: Path) -> dict[str, str]:
    """Relative path (``/``-separated) -> SHA-256 of every file under ``folder``."""
    hashes = {}
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            path = Path(dirpath) / name
            hashes[path.relative_to(folder).as_posix()] = file_sha256(path)
    return dict(sorted(hashes.items()))


def artifact_sha256(files: dict[str, str]) -> str:
    """One hash over the whole artifact: every file's relative path and SHA-256, in path order."""
    digest = hashlib.sha256()
    for name, sha in sorted(files.items()):
        digest.update(f"{name}\0{sha}\n".encode())
    return digest.hexdigest()


def verify_folder(folder: Path, files: dict[str, str], what: str) -> None:
    """Checks that ``folder`` holds exactly ``files`` with their recorded hashes.

    Raises:
        ModelIntegrityError: naming every file that is missing, changed or not part of the artifact.
    """
    if not folder.is_dir():
        raise ModelIntegrityError(f"{what}: artifact folder {folder} is missing")
    found = hash_folder(folder)
    problems = []
    for name, sha in files.items():
        if name not in found:
            problems.append(f"{folder / name} is missing")
        elif found[name] != sha:
            problems.append(f"{folder / name} changed (sha256 {found[name][:12]}..., registered {sha[:12]}...)")
    problems += [f"{folder / name} is not part of the registered artifact" for name in found if name not in files]
    if problems:
        raise ModelIntegrityError(f"{what}: artifact refused: " + "; ".join(problems))
