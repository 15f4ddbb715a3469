r"""What a signed bundle may say: versions, member paths and the bundle.json schema (no I/O here).

Versions are ASCII only (`\d` would take Arabic-Indic or fullwidth digits) and anchored with
\A...\Z (`$` lets a trailing newline through). Paths are bounded so extraction can never fail
on a name too long for the filesystem, and no path may be both a file and a folder. Modes are
normalised to 0644/0755 whatever was signed.
"""
from __future__ import annotations

import re

FORMAT = "humus-bundle/1"
SIG_FORMAT = "humus-sig/1"
MANIFEST_NAME = "bundle.json"
SIGNATURE_NAME = "bundle.sig"
KINDS = {"app": ("app",), "model": ("models",), "both": ("app", "models")}
DEFAULT_MAX_BYTES = 2 * 1024**3
MAX_META_BYTES = 16 * 1024**2          # bundle.json / bundle.sig: never read more than this
CHUNK = 1 << 20
# ASCII only (\d would take Arabic-Indic or fullwidth digits) and anchored with \A...\Z ($ lets a
# trailing newline through). Each number at most 9 digits, the whole at most MAX_VERSION_LEN.
VERSION_RE = re.compile(r"\A[0-9]{1,9}(\.[0-9]{1,9}){0,3}([-+][0-9A-Za-z]+([.][0-9A-Za-z]+)*)?\Z")
MAX_VERSION_LEN = 64
MAX_HEADER_BYTES = 64 * 1024           # one pax / GNU long-name header
MAX_FILES = 100_000
MAX_NAME_BYTES = 200                   # one path component (Linux allows 255; staging adds none)
MAX_PATH_BYTES = 1024                  # a whole member path
COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd",
              b"\x5d\x00\x00": "lzma"}
PUB_PREFIX = "humus-ed25519"
KEY_PREFIX = "humus-ed25519-private"
SKIP_NAMES = {"__pycache__", ".DS_Store"}


class BundleError(Exception):
    """A bundle (or key) was rejected; the message names the file, member or field."""


# --- versions --------------------------------------------------------------------------------

def check_version(version: str) -> str:
    if not isinstance(version, str) or len(version) > MAX_VERSION_LEN or not VERSION_RE.match(version):
        shown = repr(version) if len(repr(version)) <= 80 else repr(version)[:60] + f"... ({len(version)} chars)"
        raise BundleError(f"version {shown} is not like 1.2.0, 1.2.0-rc1 or 1.2.0+local "
                          f"(ASCII digits, at most {MAX_VERSION_LEN} characters)")
    return version


def version_key(version: str) -> tuple:
    """Order versions: numbers first, then a '-pre' release sorts before the plain one.
    '+build' metadata is ignored (1.2.0+local == 1.2.0), as in semver."""
    check_version(version)
    m = re.match(r"\A([0-9.]+)(?:([-+])(.*))?\Z", version)
    nums = tuple(int(x) for x in m.group(1).split("."))
    nums = nums + (0,) * (4 - len(nums))
    sep, suffix = m.group(2), m.group(3) or ""
    return nums, (0, suffix) if sep == "-" else (1, "")


# --- manifest --------------------------------------------------------------------------------

def check_member_path(name: str) -> str:
    """A path inside a bundle: relative, normalised, no '..', printable. Returns it normalised."""
    if not name or "\0" in name or "\\" in name:
        raise BundleError(f"member {name!r}: empty name, NUL or backslash in path")
    if name.startswith("/"):
        raise BundleError(f"member {name!r}: absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise BundleError(f"member {name!r}: '..' in path")
    if any(not p.isprintable() for p in parts):
        raise BundleError(f"member {name!r}: unprintable character in path")
    try:
        sizes = [len(p.encode("utf-8")) for p in parts]
    except UnicodeEncodeError:
        raise BundleError(f"member {name[:80]!r}: path is not UTF-8") from None
    if max(sizes, default=0) > MAX_NAME_BYTES or sum(sizes) + len(sizes) > MAX_PATH_BYTES:
        raise BundleError(f"member {name[:80]!r}...: path of {sum(sizes) + len(sizes)} bytes or a name over "
                          f"{MAX_NAME_BYTES} bytes (limits: {MAX_NAME_BYTES} per name, {MAX_PATH_BYTES} in all)")
    return "/".join(parts)


def _check_manifest(data: object, max_bytes: int) -> dict:
    if not isinstance(data, dict):
        raise BundleError(f"{MANIFEST_NAME}: expected an object")
    extra = sorted(set(data) - {"format", "version", "kind", "created", "files"})
    if extra:
        raise BundleError(f"{MANIFEST_NAME}: unknown key {str(extra[0])[:40]!r}")
    if data.get("format") != FORMAT:
        raise BundleError(f"{MANIFEST_NAME}: format {data.get('format')!r}, this box reads {FORMAT!r}")
    check_version(data.get("version"))
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:   # a list or object is unhashable
        raise BundleError(f"{MANIFEST_NAME}: kind {kind!r} is not one of {sorted(KINDS)}")
    created = data.get("created")
    if not (isinstance(created, str) and len(created) <= 40 and created.isascii() and created.isprintable()):
        raise BundleError(f"{MANIFEST_NAME}: created {str(created)[:60]!r} is not a short ASCII timestamp")
    files = data.get("files")
    if not isinstance(files, dict) or not files:
        raise BundleError(f"{MANIFEST_NAME}: 'files' must be a non-empty object")
    if len(files) > MAX_FILES:
        raise BundleError(f"{MANIFEST_NAME}: {len(files)} files, over the limit of {MAX_FILES}")
    total = 0
    tops = set()
    for path, entry in files.items():
        if check_member_path(path) != path or path in (MANIFEST_NAME, SIGNATURE_NAME):
            raise BundleError(f"{MANIFEST_NAME}: file path {path!r} is not a normalised payload path")
        top = path.split("/")[0]
        if top not in KINDS[kind] or "/" not in path:
            raise BundleError(f"{MANIFEST_NAME}: file {path!r} is outside {'/, '.join(KINDS[kind])}/ "
                              f"(kind {kind!r})")
        tops.add(top)
        if not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
                and re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])
                and set(entry) == {"sha256", "size", "mode"}    # no coercion: True is not a size
                and type(entry["size"]) is int and 0 <= entry["size"] <= max_bytes
                and type(entry["mode"]) is int and entry["mode"] & ~0o777 == 0):
            raise BundleError(f"{MANIFEST_NAME}: file {path!r} needs sha256 (64 hex), size >= 0, "
                              f"mode without setuid/sticky bits; got {str(entry)[:200]}")
        # Whatever mode was signed, a release file is 0644 or 0755: no world-writable code on a box.
        entry["mode"] = 0o755 if entry["mode"] & 0o111 else 0o644
        total += entry["size"]
    # Paths are bounded by now (check_member_path), so listing every parent folder is cheap.
    dirs = {p.rsplit("/", i)[0] for p in files for i in range(1, p.count("/") + 1)}
    clash = sorted(dirs & set(files))
    if clash:
        raise BundleError(f"{MANIFEST_NAME}: {clash[0]!r} is both a file and a directory in this bundle")
    if total > max_bytes:
        raise BundleError(f"{MANIFEST_NAME}: payload of {total} bytes is over the limit of {max_bytes}")
    if tops != set(KINDS[kind]):
        raise BundleError(f"{MANIFEST_NAME}: kind {kind!r} but files only under {sorted(tops)}")
    return data
