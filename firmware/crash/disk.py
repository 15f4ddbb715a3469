"""A simulated disk: a record replayed, and what a power cut after any operation would leave.

What survives a power cut, three ways (after ALICE, OSDI 2014, and CrashMonkey, OSDI 2018):

  strict     only what was fsynced. A file's bytes and mode are those of its last fsync; a folder's
             names those of its last fsync. A change of names (create, rename, link, unlink, mkdir,
             rmdir) lands with the fsync of a folder it touches, whole (a rename is one change to both
             its folders), together with the earlier changes to the same names it depends on.
  writeback  every change of names lands, in order (a journalled file system's metadata), but file
             data only as last fsynced: a file renamed before its data was synced is empty
             (ext4 data=writeback, XFS).
  torn       names in order and each file at its written size, but data not yet synced only half
             written and zeros after (the write-back was caught half way).

A disk is a `Tree`: {path: ("d", mode) | ("f", mode, bytes, inode) | ("l", target)}, root-relative
paths, the root itself left out. Trees can be read from a real folder, hashed, and written out.
"""
from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from .record import Op

MODELS = ("strict", "writeback", "torn")
Tree = dict


class _Inode:
    __slots__ = ("kind", "mode", "synced_mode", "data", "synced", "unsynced", "entries", "target")

    def __init__(self, kind: str, mode: int = 0o644, data: bytes = b"", target: str = "") -> None:
        self.kind, self.mode, self.synced_mode = kind, mode, mode
        self.data = bytearray(data)
        self.synced = bytes(data)
        self.unsynced: list[tuple[int, bytes]] = []        # writes since the last fsync
        self.entries: dict[str, int] = {}
        self.target = target


class SimDisk:
    """The disk as the record left it after `apply`, and its crash views."""

    def __init__(self, tree: Tree) -> None:
        self.inodes: dict[int, _Inode] = {0: _Inode("d", 0o755)}
        self.durable: dict[int, dict[str, int]] = {0: {}}   # strict: each folder's synced names
        self.pending: list[tuple] = []                       # changes of names not yet synced
        self.handles: dict[int, int] = {}
        by_real: dict[object, int] = {}
        for path in sorted(tree):
            entry = tree[path]
            parent, name = self._lookup_parent(path)
            if entry[0] == "f" and entry[3] in by_real:
                ino = by_real[entry[3]]
            else:
                ino = self._new(_Inode(entry[0], entry[1] if entry[0] != "l" else 0o777,
                                       entry[2] if entry[0] == "f" else b"",
                                       entry[1] if entry[0] == "l" else ""))
                if entry[0] == "f":
                    by_real[entry[3]] = ino
            self.inodes[parent].entries[name] = ino
            self.durable[parent][name] = ino

    # -- paths ---------------------------------------------------------------------------------
    def _new(self, inode: _Inode) -> int:
        ino = len(self.inodes)
        self.inodes[ino] = inode
        if inode.kind == "d":
            self.durable[ino] = {}
        return ino

    def _resolve(self, path: str, follow_last: bool = True, depth: int = 0) -> int:
        """The inode at `path` (normalised, root-relative), following symlinks on the way (and at
        the end if `follow_last`)."""
        ino, parts = 0, [p for p in path.split("/") if p]
        for i, part in enumerate(parts):
            node = self.inodes[ino]
            if node.kind != "d" or part not in node.entries:
                raise FileNotFoundError(path)
            ino = node.entries[part]
            if self.inodes[ino].kind == "l" and (follow_last or i < len(parts) - 1):
                if depth > 8:
                    raise OSError(f"symlink loop at {path}")
                target = os.path.normpath(os.path.join("/".join(parts[:i]), self.inodes[ino].target))
                ino = self._resolve(target, True, depth + 1)
        return ino

    def _lookup_parent(self, path: str) -> tuple[int, str]:
        head, _, name = path.rpartition("/")
        return self._resolve(head), name

    # -- replay --------------------------------------------------------------------------------
    def apply(self, op: Op, drop: str | None = None) -> None:
        """Replay one operation; an fsync whose site is `drop` is left out (the mutation test)."""
        k = op.kind
        if k in ("write", "fchmod", "fsync"):
            node = self.inodes[self.handles[op.hid]]
            if k == "write":
                end = op.offset + len(op.data)
                if len(node.data) < op.offset:
                    node.data.extend(bytes(op.offset - len(node.data)))
                node.data[op.offset:end] = op.data
                node.unsynced.append((op.offset, op.data))
            elif k == "fchmod":
                node.mode = op.mode
            elif op.site != drop:
                node.synced, node.synced_mode, node.unsynced = bytes(node.data), node.mode, []
            return
        if k == "fsync_dir":
            if op.site != drop:
                self._persist(self._resolve(op.path))
            return
        if k == "open":
            parent, name = self._lookup_parent(op.path)
            entries = self.inodes[parent].entries
            if name in entries:
                self.handles[op.hid] = self._resolve(op.path)
            elif op.created:
                ino = self._new(_Inode("f", op.mode))
                self._change(((parent, name, ino, None),))
                self.handles[op.hid] = ino
            else:
                raise FileNotFoundError(op.path)
            return
        if k == "chmod":
            self.inodes[self._resolve(op.path)].mode = op.mode
            return
        parent, name = self._lookup_parent(op.path)
        if k in ("unlink", "rmdir"):
            self._change(((parent, name, None, self.inodes[parent].entries[name]),))
        elif k == "mkdir":
            self._change(((parent, name, self._new(_Inode("d", op.mode)), None),))
        elif k == "symlink":
            self._change(((parent, name, self._new(_Inode("l", 0o777, target=os.fsdecode(op.data))), None),))
        elif k == "link":
            dparent, dname = self._lookup_parent(op.path2)
            self._change(((dparent, dname, self.inodes[parent].entries[name], None),))
        elif k == "rename":
            ino = self.inodes[parent].entries[name]
            dparent, dname = self._lookup_parent(op.path2)
            if (parent, name) != (dparent, dname):
                self._change(((parent, name, None, ino), (dparent, dname, ino, None)))
        else:
            raise ValueError(f"unknown operation {k}")

    def _change(self, changes: tuple) -> None:
        """Change names now (the running system sees it at once); `pending` until a folder fsync."""
        for d, name, new, _ in changes:
            if new is None:
                self.inodes[d].entries.pop(name, None)
            else:
                self.inodes[d].entries[name] = new
        self.pending.append(changes)

    def _persist(self, folder: int) -> None:
        """The strict model's folder fsync: the pending changes touching `folder`, and the earlier
        ones on the same names, land, in their order."""
        keys: set = set()
        chosen: set[int] = set()
        for i in range(len(self.pending) - 1, -1, -1):
            names = {(d, n) for d, n, _, _ in self.pending[i]}
            if any(d == folder for d, _ in names) or names & keys:
                chosen.add(i)
                keys |= names
        for i in sorted(chosen):
            for d, name, new, old in self.pending[i]:
                entries = self.durable[d]
                if new is not None:
                    entries[name] = new
                elif entries.get(name) == old:
                    del entries[name]
        self.pending = [c for i, c in enumerate(self.pending) if i not in chosen]

    # -- views ---------------------------------------------------------------------------------
    def view(self, model: str | None = None) -> Tree:
        """The disk after a power cut now under `model`; None: as the running system sees it."""
        out: Tree = {}
        seen = {0}

        def walk(ino: int, prefix: str) -> None:
            names = self.durable[ino] if model == "strict" else self.inodes[ino].entries
            for name, child in names.items():
                node = self.inodes[child]
                path = f"{prefix}{name}"
                if node.kind == "d":
                    if child in seen:        # cannot happen on a real disk; never recurse twice
                        continue
                    seen.add(child)
                    out[path] = ("d", node.mode)
                    walk(child, path + "/")
                elif node.kind == "l":
                    out[path] = ("l", node.target)
                else:
                    out[path] = ("f", node.synced_mode if model == "strict" else node.mode,
                                 self._content(node, model), child)

        walk(0, "")
        return out

    @staticmethod
    def _content(node: _Inode, model: str | None) -> bytes:
        if model is None:
            return bytes(node.data)
        if model != "torn" or not node.unsynced:
            return node.synced
        buf = bytearray(node.synced)
        buf.extend(bytes(max(0, len(node.data) - len(buf))))
        del buf[len(node.data):]
        for offset, data in node.unsynced:
            half = (len(data) + 1) // 2
            buf[offset:offset + half] = data[:half]
            buf[offset + half:offset + len(data)] = bytes(len(data) - half)
        del buf[len(node.data):]
        return bytes(buf)


# --- real folders ----------------------------------------------------------------------------------

def read_tree(root: str | os.PathLike) -> Tree:
    """A real folder as a Tree (inode: the real (device, inode), so hard links show)."""
    root = os.fspath(root)
    out: Tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            path = os.path.relpath(full, root)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[path] = ("l", os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                out[path] = ("d", stat.S_IMODE(st.st_mode))
            else:
                with open(full, "rb") as f:
                    out[path] = ("f", stat.S_IMODE(st.st_mode), f.read(), (st.st_dev, st.st_ino))
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
    return out


def canonical(tree: Tree) -> dict:
    """The tree with inode numbers replaced by the first path of each hard-link group."""
    first: dict = {}
    out = {}
    for path in sorted(tree):
        e = tree[path]
        if e[0] == "f":
            group = first.setdefault(e[3], path)
            out[path] = ("f", e[1], e[2], group)
        else:
            out[path] = e
    return out


def tree_hash(tree: Tree) -> str:
    h = hashlib.sha256()
    for path, e in canonical(tree).items():
        h.update(path.encode() + b"\0" + e[0].encode())
        if e[0] == "f":
            h.update(b"%o\0" % e[1] + hashlib.sha256(e[2]).digest() + e[3].encode())
        elif e[0] == "d":
            h.update(b"%o" % e[1])
        else:
            h.update(e[1].encode())
        h.update(b"\n")
    return h.hexdigest()


def write_tree(tree: Tree, dest: Path) -> None:
    """Make `tree` real under `dest` (which exists and is empty)."""
    linked: dict = {}
    dirs = []
    for path in sorted(tree):
        e = tree[path]
        full = dest / path
        if e[0] == "d":
            full.mkdir()
            dirs.append((full, e[1]))
        elif e[0] == "l":
            os.symlink(e[1], full)
        elif e[3] in linked:
            os.link(linked[e[3]], full)
        else:
            full.write_bytes(e[2])
            os.chmod(full, e[1])
            linked[e[3]] = full
    for full, mode in reversed(dirs):     # last, so a read-only folder was still filled
        os.chmod(full, mode)


def differences(a: Tree, b: Tree, limit: int = 5) -> list[str]:
    """What differs between two trees, for a failing completeness check or a report."""
    ca, cb = canonical(a), canonical(b)
    out = []
    for path in sorted(set(ca) | set(cb)):
        x, y = ca.get(path), cb.get(path)
        if x == y:
            continue
        if x is None or y is None:
            out.append(f"{path}: {'only in the second' if x is None else 'only in the first'}")
        elif x[0] != y[0]:
            out.append(f"{path}: {x[0]} vs {y[0]}")
        elif x[0] == "f" and x[2] != y[2]:
            out.append(f"{path}: {len(x[2])} vs {len(y[2])} bytes, contents differ")
        else:
            out.append(f"{path}: {x[1:2] + x[3:]} vs {y[1:2] + y[3:]}")
        if len(out) >= limit:
            break
    return out
