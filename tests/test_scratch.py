"""Files made for the page to fetch go into folders that are removed an hour later: the scratch folder does not
grow for as long as the server runs (each export and each gallery refresh makes one)."""

from __future__ import annotations

import os
import time

from webui.scratch import KEPT_SECONDS, fresh_folder


def test_old_folders_go_as_new_ones_are_made(tmp_path):
    root = tmp_path / "scratch"
    old, recent = fresh_folder("export", root), fresh_folder("images", root)
    (old / "chat.md").write_text("old export")
    long_ago = time.time() - KEPT_SECONDS - 60
    os.utime(old, (long_ago, long_ago))
    new = fresh_folder("export", root)
    assert not old.exists()
    assert recent.is_dir() and new.is_dir() and new.name.startswith("export-")
    assert (root.stat().st_mode & 0o777) == 0o700  # the files are the visitor's: nobody else on the host reads them
    default = fresh_folder("view")
    assert (default.parent.stat().st_mode & 0o777) == 0o700 and default.parent == fresh_folder("view").parent
