"""The on-disk layout of a run over a dataset, written so that a killed run leaves
nothing half-written and resumes at the last completed batch.

::

    OUT/
      manifest.json          what was run (settings, versions) and how far: the commit point
      maps.zarr/             (N, h, w) or (N, H, W, C) maps, one chunk per batch
      table/part-000000.parquet, part-000001.parquet, ...   one row per image, one file per batch

Each batch is written in three steps: its maps into the zarr array (grown to hold them;
zarr writes every chunk to a temporary file and renames it), its rows as a Parquet file
(written to ``.part-*.tmp``, flushed to disk, renamed), then ``manifest.json`` with the
new batch and row counts (the same way). A batch counts only once the manifest says so:
on resume, maps beyond the manifest's rows are cut off and Parquet files of later
batches deleted, and the run goes on from the next batch.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import pathlib
import shutil

import numpy as np

from convviz.errors import InputError, OutputError

__all__ = ["FORMAT", "RunStore", "fingerprint", "require"]

FORMAT = "convviz.dataset-run/1"
MANIFEST = "manifest.json"
MAPS = "maps.zarr"
TABLE = "table"


def require():
    """``(zarr, pyarrow.parquet)``, or an InputError saying how to install them."""
    try:
        import pyarrow
        import pyarrow.parquet
        import zarr
    except ImportError as err:
        raise InputError(
            f"Runs over datasets write zarr arrays and Parquet tables and need {err.name}: "
            "pip install 'convviz[datasets]' (zarr>=3.1.3 and pyarrow)."
        ) from err
    return zarr, pyarrow, pyarrow.parquet


def fingerprint(model) -> str:
    """A SHA-256 of the model's structure and weights: the same model file gives the
    same fingerprint on every backend.

    >>> import keras
    >>> m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> fingerprint(m) == fingerprint(m), len(fingerprint(m))
    (True, 64)
    """
    import keras

    digest = hashlib.sha256()
    for layer in model.layers:
        digest.update(f"{type(layer).__name__}:{layer.name};".encode())
    for variable in model.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(variable), dtype=np.float32)
        digest.update(f"{variable.path}{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _atomic_json(path: pathlib.Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, default=_jsonable)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _jsonable(value):
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    return str(value)


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """``key: old -> new`` for each setting that differs (nested keys joined by dots)."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


class RunStore:
    """Writes one run into ``out`` (see the module's docstring).

    ``settings`` (JSON-able) determine the results: a folder holding a run with other
    settings is refused. ``resume`` continues a run with the same settings (without it,
    an unfinished run is refused too); ``overwrite`` replaces whatever run is there.
    """

    def __init__(self, out, settings: dict, *, versions: dict, resume: bool, overwrite: bool,
                 extra: dict | None = None):
        self.zarr, self.pyarrow, self.parquet = require()
        self.out = pathlib.Path(os.fspath(out)).expanduser().absolute()
        self.settings = json.loads(json.dumps(settings, default=_jsonable))
        self.versions = versions
        self.extra = extra or {}
        self.batches = self.rows = 0
        self.maps = None
        self.complete = False
        manifest = self.out / MANIFEST
        if self.out.exists() and not self.out.is_dir():
            raise InputError(f"{self.out} is a file; give a folder for the run's output.")
        if manifest.exists() and overwrite:
            self._clear()
        elif manifest.exists():
            self._reopen(json.loads(manifest.read_text()), resume)
        elif self.out.exists() and any(p.name != ".DS_Store" for p in self.out.iterdir()):
            raise InputError(
                f"{self.out} is not empty and holds no convviz run (no {MANIFEST}); choose an empty or new folder."
            )
        try:
            (self.out / TABLE).mkdir(parents=True, exist_ok=True)
            if not manifest.exists():
                self._commit()
        except OSError as err:
            raise OutputError(f"Cannot write the run into {self.out}: {err.strerror or err}.") from err

    # -- opening --------------------------------------------------------------------

    def _clear(self) -> None:
        shutil.rmtree(self.out / MAPS, ignore_errors=True)
        shutil.rmtree(self.out / TABLE, ignore_errors=True)
        (self.out / MANIFEST).unlink()

    def _reopen(self, manifest: dict, resume: bool) -> None:
        if manifest.get("format") != FORMAT:
            raise InputError(f"{self.out / MANIFEST} is not a convviz dataset run ({manifest.get('format')!r}).")
        changed = _differences(manifest["settings"], self.settings)
        if changed:
            raise InputError(
                f"{self.out} holds a run with other settings ({'; '.join(changed[:6])}); results of "
                "different settings are never mixed. Choose another folder, or pass overwrite=True "
                "(--overwrite) to replace that run."
            )
        done = f"{manifest['rows']} image(s) in {manifest['batches']} batch(es)"
        if not resume:
            state = "a finished run" if manifest.get("complete") else f"an unfinished run ({done})"
            raise InputError(
                f"{self.out} holds {state} with these settings; pass resume=True (--resume) to "
                f"{'open it' if manifest.get('complete') else 'continue it'}, or overwrite=True (--overwrite) "
                "to start again."
            )
        self.batches, self.rows, self.complete = manifest["batches"], manifest["rows"], manifest.get("complete", False)
        self._created = manifest.get("created")
        # What a killed run wrote after its last commit: temporary files, Parquet
        # files of later batches, maps beyond the committed rows.
        for path in list(self.out.rglob("*.tmp")) + list(self.out.rglob("*.partial")):
            path.unlink(missing_ok=True)
        for path in (self.out / TABLE).glob("part-*.parquet"):
            if int(path.stem.split("-")[1]) >= self.batches:
                path.unlink()
        if (self.out / MAPS).exists():
            if self.rows == 0:
                shutil.rmtree(self.out / MAPS)
            else:
                self.maps = self.zarr.open_array(str(self.out / MAPS), mode="r+")
                if self.maps.shape[0] != self.rows:
                    self.maps.resize((self.rows, *self.maps.shape[1:]))

    # -- writing --------------------------------------------------------------------

    def write(self, maps: np.ndarray, columns: dict) -> None:
        """Add one batch: its maps and its table rows (``{column: (n,) array}``), then
        commit it in the manifest."""
        n = len(maps)
        try:
            if self.maps is None:
                self.maps = self.zarr.create_array(
                    store=str(self.out / MAPS), shape=(0, *maps.shape[1:]), chunks=(max(n, 1), *maps.shape[1:]),
                    dtype=self.settings["dtype"], fill_value=0, config={"write_empty_chunks": True},
                )
            self.maps.resize((self.rows + n, *self.maps.shape[1:]))
            self.maps[self.rows : self.rows + n] = maps.astype(self.settings["dtype"])
            table = self.pyarrow.table({k: np.asarray(v) if not isinstance(v, list) else v
                                        for k, v in columns.items()})
            part = self.out / TABLE / f"part-{self.batches:06d}.parquet"
            tmp = part.with_name(f".{part.name}.tmp")
            self.parquet.write_table(table, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, part)
            self.batches += 1
            self.rows += n
            self._commit()
        except OSError as err:
            raise OutputError(f"Cannot write the run into {self.out}: {err.strerror or err}.") from err

    def finish(self) -> None:
        """Mark the run complete."""
        self.complete = True
        self._commit()

    def _commit(self) -> None:
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        manifest = {
            "format": FORMAT,
            "settings": self.settings,
            "versions": self.versions,
            **self.extra,
            "batches": self.batches,
            "rows": self.rows,
            "complete": self.complete,
            "map_shape": None if self.maps is None else list(self.maps.shape[1:]),
            "created": getattr(self, "_created", None) or now,
            "updated": now,
        }
        self._created = manifest["created"]
        _atomic_json(self.out / MANIFEST, manifest)
