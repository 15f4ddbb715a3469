"""Footage ingestion: video files and image folders -> one compact uint8 cache.

Every source becomes square RGB frames at the training resolution plus a decay value in
[0, 1] (NaN where the source carries none), a source tag and a train/held-out split. The
cache is a single ``.npz`` (a few MB at 64x64) so training starts in a second instead of
re-decoding 5,000 JPEGs.

Decay labels come from, in this order (export/decayplan.py): a sidecar (footage.toml / decay.csv,
export/sidecar.py; it may name a labeller, export/labellers.py), the time position inside a clip,
a still's capture time (EXIF, a date-time or a number sequence in its name), its modification time.
Each frame records where its decay came from (``how``), for the footage table.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, ImageSequence

from .decaydist import KEY, describe
from .footagereport import subjects

VIDEO_EXT = {".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi", ".webp", ".gif"}
IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
log = logging.getLogger(__name__)


class FootageError(ValueError):
    """Bad or unreadable input; the message names the offending file or key."""


@dataclass
class FootageConfig:
    """How frames are taken from the sources.

    Args:
        resolution: side of the square output frames in pixels.
        video_fps: frames sampled per second of video (animated images: every frame is a
            candidate, then de-duplicated).
        max_frames_per_video: cap per clip so one long clip cannot swamp the data set.
        dedup_threshold: two frames of the same source whose 16x16 thumbnails differ by less
            than this mean absolute value (0..255 scale) count as duplicates; one is dropped.
        holdout: fraction of *groups* (one banana, one clip segment, one tomato photo) held
            out for evaluation; groups keep near-identical shots of one object on one side.
        seed: makes the split reproducible.
    """

    resolution: int = 64
    video_fps: float = 2.0
    max_frames_per_video: int = 2000
    dedup_threshold: float = 2.0
    holdout: float = 0.1
    seed: int = 0

    def object_subjects(self, fr: "Frames") -> set[str]:
        """Subjects whose stills come as several photographs per object (a group of more than one
        still, e.g. one banana over 21 days): those are split by whole object."""
        sizes: dict[tuple[str, str], int] = {}
        for s, g in zip(fr.source, fr.group):
            if "#" not in g:                        # clip chunks are split as before
                sizes[(s, g)] = sizes.get((s, g), 0) + 1
        return {s for (s, _), n in sizes.items() if n > 1}


@dataclass
class Frames:
    """What ingestion produced (before the split)."""

    images: list = field(default_factory=list)  # HxWx3 uint8
    decay: list = field(default_factory=list)  # float, NaN = unknown
    source: list = field(default_factory=list)  # str tag (e.g. "tomatoes", "melon")
    group: list = field(default_factory=list)  # str, split unit
    how: list = field(default_factory=list)  # str, where the decay came from ("EXIF", "video time" ...)
    notes: list = field(default_factory=list)  # str, for people: series on a weak clock, clips chained ...

    def add(self, img, decay, source, group, how):
        self.images.append(img)
        self.decay.append(float("nan") if decay is None else float(decay))
        self.source.append(source)
        self.group.append(group)
        self.how.append(how)


def center_square(img: Image.Image, size: int) -> np.ndarray:
    """Centre-crop to a square and resize with a good filter (area-like downsampling)."""
    img = img.convert("RGB")
    w, h = img.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    img = img.crop((left, top, left + s, top + s))
    if s != size:
        img = img.resize((size, size), Image.Resampling.LANCZOS if s < size else Image.Resampling.BOX)
    return np.asarray(img, dtype=np.uint8).copy()


def _thumb(a: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(a).resize((16, 16), Image.Resampling.BOX), np.float32).ravel()


def dedup_indices(images: list, threshold: float) -> list[int]:
    """Greedy near-duplicate removal: keep a frame unless it is within ``threshold`` of a kept one.

    Uses 16x16 thumbnails, so it costs O(N * kept) tiny dot products; fine for thousands.
    """
    if threshold <= 0 or len(images) < 2:
        return list(range(len(images)))
    th = np.stack([_thumb(a) for a in images])
    kept: list[int] = []
    kept_th = np.empty((0, th.shape[1]), np.float32)
    for i, t in enumerate(th):
        if len(kept) and np.abs(kept_th - t).mean(axis=1).min() < threshold:
            continue
        kept.append(i)
        kept_th = np.concatenate([kept_th, t[None]])
    return kept


def read_video(path: Path, cfg: FootageConfig) -> list[tuple[np.ndarray, float]]:
    """Decode a clip; return (frame, time position in [0, 1]) pairs.

    Animated WebP/GIF go through Pillow (PyAV's webp demuxer does not animate); everything
    else through PyAV, sampling ``cfg.video_fps`` frames per second.
    """
    out = []
    if path.suffix.lower() in {".webp", ".gif"}:
        try:
            im = Image.open(path)
        except Exception as e:  # noqa: BLE001 - re-raised with the file name
            raise FootageError(f"{path}: cannot open image ({e})") from e
        n = getattr(im, "n_frames", 1)
        for i, fr in enumerate(ImageSequence.Iterator(im)):
            if i >= cfg.max_frames_per_video:
                break
            out.append((center_square(fr.convert("RGB"), cfg.resolution), i / max(n - 1, 1)))
        return out
    try:
        import av
    except ImportError as e:  # pragma: no cover - av is in the train extra
        raise FootageError(f"{path}: PyAV (pip install av) is needed to read video") from e
    try:
        with av.open(str(path)) as c:
            st = c.streams.video[0]
            dur = float(st.duration * st.time_base) if st.duration else (c.duration or 0) / 1e6
            next_t = 0.0
            frames = []
            for fr in c.decode(st):
                t = float(fr.pts * st.time_base) if fr.pts is not None else next_t
                if t + 1e-6 < next_t:
                    continue
                next_t = t + 1.0 / cfg.video_fps
                frames.append((center_square(fr.to_image(), cfg.resolution), t))
                if len(frames) >= cfg.max_frames_per_video:
                    break
    except FootageError:
        raise
    except Exception as e:  # noqa: BLE001
        raise FootageError(f"{path}: cannot decode video ({e})") from e
    if not frames:
        raise FootageError(f"{path}: no video frames decoded")
    dur = dur or frames[-1][1] or 1.0
    return [(a, min(max(t / dur, 0.0), 1.0)) for a, t in frames]


def _is_animated(path: Path) -> bool:
    if path.suffix.lower() not in {".webp", ".gif"}:
        return path.suffix.lower() in VIDEO_EXT
    try:
        with Image.open(path) as im:
            return getattr(im, "n_frames", 1) > 1
    except Exception as e:  # noqa: BLE001
        raise FootageError(f"{path}: cannot open image ({e})") from e


def _source_tag(path: Path, root: Path) -> str:
    rel = path.relative_to(root) if path != root else Path(path.name)
    return rel.parts[0] if len(rel.parts) > 1 else path.stem


def ingest(paths: list[str | Path], cfg: FootageConfig | None = None, progress=None) -> Frames:
    """Read every video and image under ``paths`` (files or folders, recursively)."""
    from .decayplan import plan

    cfg = cfg or FootageConfig()
    fr = Frames()
    for root in map(Path, paths):
        if not root.exists():
            raise FootageError(f"{root}: no such file or folder")
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        files = [p for p in files if p.suffix.lower() in VIDEO_EXT | IMAGE_EXT]
        base = root if root.is_dir() else root.parent
        clips = {p for p in files if _is_animated(p)}
        labels, notes = plan(files, base, clips, root.is_dir())
        for kind, text in notes:
            log.log(logging.WARNING if kind == "warning" else logging.INFO, "%s: %s", base, text)
            fr.notes.append(f"{kind}: {base}: {text}")
        stills: dict[str, list] = {}
        for p in files:
            tag = _source_tag(p, base)
            # Groups are named relative to the footage root, so the split does not depend on where
            # the folder lives or how its path was spelled (an absolute temp path reshuffled it).
            name = p.relative_to(base).as_posix()
            label = labels[PurePosixPath(name)]
            if p in clips:
                clip = read_video(p, cfg)
                keep = dedup_indices([a for a, _ in clip], cfg.dedup_threshold)
                for i in keep:
                    # Split clips in ~10 contiguous chunks so held-out frames are not
                    # neighbours of training frames.
                    fr.add(clip[i][0], label.at(clip[i][1]), tag, f"{name}#{int(clip[i][1] * 9.999)}", label.how)
            else:
                try:
                    with Image.open(p) as im:
                        a = center_square(im, cfg.resolution)
                except Exception as e:  # noqa: BLE001
                    raise FootageError(f"{p}: cannot read image ({e})") from e
                stills.setdefault(tag, []).append((a, label.decay, label.group or name, label.how))
            if progress:
                progress(p)
        for tag, items in stills.items():
            for i in dedup_indices([a for a, _, _, _ in items], cfg.dedup_threshold):
                fr.add(items[i][0], items[i][1], tag, items[i][2], items[i][3])
    if not fr.images:
        raise FootageError(f"no images or videos found in {', '.join(map(str, paths))}")
    return fr


def split_mask(groups: list[str], holdout: float, seed: int, sources: list[str] | None = None) -> np.ndarray:
    """True = held out. A stable hash of the group name decides, so adding files never
    reshuffles existing ones.

    Every subject (source) with two or more groups holds out at least its lowest-hash group and
    trains on at least its highest-hash one: a
    subject judged per subject needs held-out images of its own (by the hash alone, none of the 9
    bananas fell below 10%, so the bananas were never judged on images the model had not seen)."""
    h = np.array([int(hashlib.sha1(f"{seed}:{g}".encode()).hexdigest()[:8], 16) / 2**32 for g in groups])
    held = h < holdout
    if holdout > 0 and sources is not None:
        src = np.asarray(sources)
        for s in np.unique(src):
            mine = src == s
            if len(set(np.asarray(groups)[mine])) < 2:
                continue
            if not held[mine].any():
                held |= mine & (h == h[mine].min())
            if held[mine].all():   # and trains on at least one group of its own
                held &= ~(mine & (h == h[mine].max()))
    # Tiny data sets: KID needs >= 2 held-out images; take the lowest-hash groups until there
    # are (still deterministic; never triggers on real data, e.g. 482 of 5,251 held out).
    if holdout > 0 and held.sum() < 2 and len(set(groups)) >= 4:
        for v in np.unique(h):
            held |= h == v
            if held.sum() >= 2:
                break
    return held


# A subject photographed as a few whole objects (9 bananas, ~20 photographs each) is judged on whole
# objects the model never saw: a photograph of banana 3 on day 12 says little about generalising if
# banana 3 on day 11 was trained on. At least this many images go to each held-out half.
OBJECT_TEST_MIN = 20
OBJECT_VALIDATION_MIN = 10
TRAIN, VALIDATION, TEST = 0, 1, 2


def _pixel_halves(images: np.ndarray, held: np.ndarray) -> np.ndarray:
    """The original rule for the held-out halves: a stable hash of each image's pixels (below 8
    held-out images both halves are the whole split, marked VALIDATION | TEST = 3)."""
    parts = np.zeros(len(held), np.int8)
    if held.sum() < 8:
        parts[held] = VALIDATION | TEST
        return parts
    for i in np.flatnonzero(held):
        parts[i] = VALIDATION if hashlib.sha1(images[i].tobytes()).digest()[0] % 2 == 0 else TEST
    return parts


def split_parts(images: np.ndarray, groups: list[str], sources: list[str], holdout: float, seed: int,
                objects: set[str] = frozenset()) -> np.ndarray:
    """TRAIN, VALIDATION or TEST per image.

    Subjects in ``objects`` hold out whole objects (groups): by group hash, test objects until
    OBJECT_TEST_MIN images, then validation objects until OBJECT_VALIDATION_MIN, keeping at least one
    object for training. Every other subject keeps the earlier split exactly (`split_mask`, then the
    pixel-hash halves), so the tomato split is unchanged."""
    src, grp = np.asarray(sources), np.asarray(groups)
    mine = np.isin(src, sorted(objects))
    held = split_mask(list(grp[~mine]), holdout, seed, list(src[~mine]))
    parts = np.zeros(len(grp), np.int8)
    parts[~mine] = _pixel_halves(np.asarray(images)[~mine], held)
    for s in sorted(objects):
        names = sorted(set(grp[src == s]), key=lambda g: hashlib.sha1(f"{seed}:{g}".encode()).hexdigest())
        counts = {g: int(((src == s) & (grp == g)).sum()) for g in names}
        need = [(TEST, OBJECT_TEST_MIN), (VALIDATION, OBJECT_VALIDATION_MIN)]
        taken = {TEST: 0, VALIDATION: 0}
        for g in names[:-1]:                       # the last object always trains
            if not need:
                break
            part, least = need[0]
            parts[(src == s) & (grp == g)] = part
            taken[part] += counts[g]
            if taken[part] >= least:
                need.pop(0)
    return parts


def build_cache(paths, out: str | Path, cfg: FootageConfig | None = None, progress=None) -> dict:
    """Ingest and write ``out`` (npz). Returns the summary that also lands in the manifest."""
    cfg = cfg or FootageConfig()
    fr = ingest(paths, cfg, progress)
    images = np.stack(fr.images)
    decay = np.array(fr.decay, np.float32)
    source = np.array(fr.source)
    parts = split_parts(images, fr.group, fr.source, cfg.holdout, cfg.seed, cfg.object_subjects(fr))
    held = parts != TRAIN
    summary = {
        "paths": [str(p) for p in paths],
        "resolution": cfg.resolution,
        "images": int(len(images)),
        "train": int((~held).sum()),
        "heldout": int(held.sum()),
        "sources": {s: int((source == s).sum()) for s in sorted(set(fr.source))},
        "heldout_sources": {s: int(((source == s) & held).sum()) for s in sorted(set(fr.source))},
        "test_sources": {s: int(((source == s) & (parts & TEST > 0)).sum()) for s in sorted(set(fr.source))},
        "decay_known": int(np.isfinite(decay).sum()),
        "subjects": subjects(decay, fr.how, source, parts),
        "decay_notes": fr.notes,
        "config": cfg.__dict__,
        # Travels with the training checkpoint into the manifest (`onnx`), where `sample` draws from it.
        KEY: describe(decay, held, source),
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, images=images, decay=decay, source=source, heldout=held, part=parts,
                        group=np.array(fr.group), summary=json.dumps(summary))
    return summary


@dataclass
class Dataset:
    """The cache in memory. images: N x H x W x 3 uint8."""

    images: np.ndarray
    decay: np.ndarray
    source: np.ndarray
    heldout: np.ndarray
    summary: dict
    # TRAIN / VALIDATION / TEST per image (VALIDATION | TEST: both halves); None in caches made before
    # whole-object splits, which fall back to the pixel-hash halves.
    part: np.ndarray | None = None
    # The split unit of each image (one photograph, one banana, one tenth of a clip); None in older caches.
    group: np.ndarray | None = None

    def _select(self, m: np.ndarray) -> "Dataset":
        return Dataset(self.images[m], self.decay[m], self.source[m], self.heldout[m], self.summary,
                       None if self.part is None else self.part[m], None if self.group is None else self.group[m])

    def split(self, heldout: bool) -> "Dataset":
        return self._select(self.heldout == heldout)

    def __len__(self):
        return len(self.images)

    def heldout_part(self, part: str) -> "Dataset":
        """Half of the held-out split: "validation" (what `tune` chooses the sampler on) or "test"
        (what `evaluate` reports). Choosing on the training split rewards memorisation: a student
        can match its own training images better than the teacher does new ones. Each image's half
        is a stable hash of its pixels. Below 8 held-out images both halves are the whole split."""
        if part not in ("validation", "test"):
            raise ValueError(f"held-out part must be 'validation' or 'test', not {part!r}")
        if self.part is not None:
            return self._select((self.part & (VALIDATION if part == "validation" else TEST)) > 0)
        held = self.split(heldout=True)
        if len(held) < 8:
            return held
        val = np.array([hashlib.sha1(im.tobytes()).digest()[0] % 2 == 0 for im in held.images])
        return held._select(val if part == "validation" else ~val)


def load_cache(path: str | Path) -> Dataset:
    path = Path(path)
    if not path.exists():
        raise FootageError(f"{path}: cache not found (run `humus-export footage` first)")
    try:
        z = np.load(path, allow_pickle=False)
        ds = Dataset(z["images"], z["decay"], z["source"], z["heldout"], json.loads(str(z["summary"])),
                     z["part"] if "part" in z.files else None, z["group"] if "group" in z.files else None)
    except KeyError as e:
        raise FootageError(f"{path}: not a footage cache, missing key {e}") from e
    except Exception as e:  # noqa: BLE001
        raise FootageError(f"{path}: unreadable cache ({e})") from e
    if ds.images.ndim != 4 or ds.images.shape[-1] != 3 or ds.images.dtype != np.uint8:
        raise FootageError(f"{path}: key 'images' must be N x H x W x 3 uint8, got "
                           f"{ds.images.shape} {ds.images.dtype}")
    return ds
