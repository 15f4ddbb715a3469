import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

SHARED_DECAY = Path(__file__).resolve().parents[2] / "shared" / "data" / "decay"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A small real ONNX denoiser + manifest (see modelmaker.py)."""
    from modelmaker import make_model_dir
    return make_model_dir(tmp_path_factory.mktemp("model") / "tiny")
