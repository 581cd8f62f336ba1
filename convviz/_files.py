"""Writing a directory all at once: no half-written output after a failure."""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile

from convviz.errors import InputError


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
    the old directory or the complete new one.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    # A sibling, not the system temp dir, so the final rename stays on one filesystem.
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp's private 0o700 would stick to the final folder
        build(tmp)
        if target.exists():
            old = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / "data")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def check_out_dir(out_dir, *, overwrite: bool) -> pathlib.Path:
    """The absolute output folder, refused when it is a file, or not empty unless
    ``overwrite`` (nothing is written here)."""
    target = pathlib.Path(out_dir).expanduser().absolute()
    if target.exists():
        if not target.is_dir():
            raise InputError(f"{target} exists and is not a directory.")
        if any(target.iterdir()) and not overwrite:
            raise InputError(
                f"{target} is not empty; refusing to overwrite it. Pass overwrite=True "
                "(--overwrite on the command line) or choose another folder."
            )
    return target
