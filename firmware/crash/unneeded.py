"""The fsync call sites whose removal no check notices, and why each is not needed.

The mutation test leaves out each fsync call site in turn. When no crash state then fails a check,
either the fsync is not needed or a check is missing; this table is the judgment, site by site, made
by reading the states that changed. A site left undetected that is not here, or one here that a check
now notices, makes the report not ok: someone has to look again.
"""
from __future__ import annotations

NOT_NEEDED = {
    "atomic.symlink_atomic (dir) <- releases.activate":
        "activate() writes state.json next, whose fsync of the same folder (opt/humus) lands the swap "
        "before anything is announced; a cut before it leaves the previous release current, as a cut "
        "a moment earlier would. Kept: symlink_atomic promises durability to every caller.",
    "atomic.write_atomic (dir) <- releases._seal":
        "release.json is written inside the staging folder, which _fsync_tree syncs (folder included) "
        "right after, before the release gets its name.",
    "atomic.write_atomic (file) <- releases._seal":
        "_fsync_tree syncs release.json again before the release gets its name.",
    "bundle.extract_verified (file)":
        "_fsync_tree syncs every unpacked file again before the release gets its name (the second "
        "fsync of a clean file costs little).",
    "atomic.write_atomic (dir) <- statusfile.flush":
        "a cut that loses the rename leaves the previous whole snapshot; a health check only accepts "
        "a snapshot newer than its restart, and /run is a tmpfs on the box anyway.",
    "releases._seal (dir)":
        "the staging folder's rename also lands with the next fsync of opt/humus (state.json, the "
        "current link), before `current` can point at it: one journal commits a rename whole on ext4 "
        "and XFS, as the strict model assumes. POSIX does not promise that, so it stays.",
    "releases.prune (dir)":
        "without it a cut mid-prune may bring the pruned release back whole instead of leaving a "
        ".trash folder; either way the next update cleans up (prune again, or sweep).",
}
