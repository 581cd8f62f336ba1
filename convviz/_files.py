"""Writing a directory all at once: no half-written output after a failure."""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile

from convviz.errors import InputError, OutputError


def read_saved(path, read, *, what: str, writer: str):
    """``read(path)`` for a file convviz wrote, with a missing, unreadable or foreign
    file an :class:`~convviz.errors.InputError` naming ``what`` was expected and the
    ``writer`` that makes one."""
    path = pathlib.Path(os.fspath(path))
    if path.is_dir():
        raise InputError(f"{path} is a folder, not {what} file (written by {writer}).")
    if not path.is_file():
        raise InputError(f"{what[0].upper()}{what[1:]} file not found: {path}.")
    try:
        return read(path)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:  # zip, JSON, npz, fields
        raise InputError(
            f"{path} is not {what} file ({type(err).__name__}: {err}); write one with {writer}."
        ) from err


def refuse_existing(target: pathlib.Path, overwrite: bool, what: str) -> None:
    if target.exists() and not overwrite:
        raise InputError(
            f"{target} already exists; refusing to overwrite it. Pass overwrite=True to "
            f"replace it, or choose another directory for {what}."
        )
    if target.exists() and not target.is_dir():
        raise InputError(f"{target} exists and is not a directory.")


def build_atomically(target: pathlib.Path, build) -> pathlib.Path:
    """Run ``build(tmp_dir)`` in a sibling temp dir, then rename it to ``target``.

    A crash or an error leaves no half-written ``target`` behind: readers see either
    the old directory or the complete new one. A failure to write (a read-only or full
    filesystem, a file in the way) is an :class:`~convviz.errors.OutputError`.
    """
    check_writable(target)
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # A sibling, not the system temp dir, so the final rename stays on one filesystem.
        tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        tmp.chmod(0o755)  # mkdtemp's private 0o700 would stick to the final folder
        build(tmp)
        if target.exists():
            old = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / "data")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except OSError as err:
        if isinstance(err, OutputError):
            raise
        raise OutputError(
            f"Cannot write {target}: {err.strerror or err}"
            f"{f' ({err.filename})' if err.filename else ''}. Nothing was written there; "
            "choose a folder on a writable filesystem with free space."
        ) from err
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def check_writable(target: pathlib.Path) -> None:
    """Refuse, before any work, an output location that cannot be created: one under
    a file, or whose nearest existing folder is not writable.

    >>> import pathlib, tempfile
    >>> blocker = pathlib.Path(tempfile.mkdtemp()) / "a_file"
    >>> _ = blocker.write_text("x")
    >>> check_writable(blocker / "gallery")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    convviz.errors.OutputError: Cannot write .../a_file/gallery: .../a_file is a file, not a folder. Choose an output folder that is not inside a file.
    """
    target = pathlib.Path(target).expanduser().absolute()
    ancestor = target.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(
            f"Cannot write {target}: {ancestor} is a file, not a folder. Choose an "
            "output folder that is not inside a file."
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputError(
            f"Cannot write {target}: {ancestor} is not writable (read-only, or owned by "
            "another user). Choose a folder you can write to."
        )


def check_out_dir(out_dir, *, overwrite: bool) -> pathlib.Path:
    """The absolute output folder, refused when it is a file, or not empty unless
    ``overwrite`` (nothing is written here)."""
    target = pathlib.Path(out_dir).expanduser().absolute()
    check_writable(target)
    if target.exists():
        if not target.is_dir():
            raise InputError(f"{target} exists and is not a directory.")
        if any(target.iterdir()) and not overwrite:
            raise InputError(
                f"{target} is not empty; refusing to overwrite it. Pass overwrite=True "
                "(--overwrite on the command line) or choose another folder."
            )
    return target
