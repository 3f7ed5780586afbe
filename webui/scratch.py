"""Files made for the page to fetch (copies of stored images and documents, exports, gallery copies), each in a
folder of its own under the process's scratch folder (made private by `mkdtemp`, so nobody else on the host can
reach into it). Gradio serves its own cached copy of a file a handler returns, so a folder is removed an hour after
it was made (as new ones are made): the scratch folder does not grow for as long as the server runs."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

KEPT_SECONDS = 3600
_scratch: list[Path] = []  # this process's scratch folder, once made


def fresh_folder(kind: str, root: Path | None = None) -> Path:
    """A new, private folder for files of `kind`; folders older than KEPT_SECONDS are removed first."""
    if root is None:
        if not _scratch:
            _scratch.append(Path(tempfile.mkdtemp(prefix="switchboard-scratch-")))
        root = _scratch[0]
    scratch = root
    scratch.mkdir(mode=0o700, exist_ok=True)
    cutoff = time.time() - KEPT_SECONDS
    for old in scratch.iterdir():
        try:
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:  # removed by another request meanwhile
            continue
    return Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=scratch))
