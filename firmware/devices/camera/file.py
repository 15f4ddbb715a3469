"""`[camera] type = "file"`: a video file or a folder of images, played in a loop at `fps`.

For rehearsals and tests without a camera. Frames are real images, so a still folder never counts
as "frozen" (`detect_frozen = False`); a file that cannot be read is a fault like an unplugged camera.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from firmware.devices.camera.watchdog import CaptureCamera, paced

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


class _VideoSource:
    detect_frozen = False

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self._wait, self._cap = path, paced(fps), None

    def open(self) -> None:
        import cv2
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise OSError(f"cannot open video {self.path}")
        self._cap = cap

    def read(self) -> np.ndarray | None:
        import cv2
        self._wait()
        ok, bgr = self._cap.read()
        if not ok:  # end of file: loop
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, bgr = self._cap.read()
            if not ok:
                raise OSError(f"{self.path}: no frames")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


class _FolderSource:
    detect_frozen = False

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self._wait, self._files, self._i = path, paced(fps), [], 0

    def open(self) -> None:
        self._files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._files:
            raise OSError(f"no images in {self.path}")

    def read(self) -> np.ndarray | None:
        import cv2
        self._wait()
        f = self._files[self._i % len(self._files)]
        self._i += 1
        bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if bgr is None:
            raise OSError(f"cannot read image {f}")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        pass


class FileCamera(CaptureCamera):
    def __init__(self, cfg, clock, **kw) -> None:
        path = Path(cfg.path)
        cls = _FolderSource if path.is_dir() else _VideoSource
        super().__init__(cfg, clock, lambda: cls(path, cfg.fps), f"camera[file {path.name}]", **kw)
