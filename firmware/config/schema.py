"""The box's configuration: the top-level `Config` and its own sections ([show], [model], [lights],
[status]); the device sections are in devices.py, the venue sections in venue.py, reading a file in
load.py.

Strict means: no coercion (`fps = true`, `height = "1080"`, `own_process = "yes"` are errors, an
integer is accepted where a float is meant), finite numbers only (no nan/inf), every number, string
and list bounded, and the file itself at most MAX_CONFIG_BYTES (load.py).

Every device section picks its backend with a `type` key (`"sim"` is always available), so simulated
and real devices mix freely. Unknown keys are rejected with the nearest valid key suggested; the error
names the file, the section and the key. Nothing downstream ever sees the raw TOML.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from firmware.config.devices import (CameraConfig, CameraSim, DisplayConfig, DisplayHeadless, DmxConfig, DmxSim,
                                     PresenceConfig, PresenceSim)
from firmware.config.section import DAY, RGB, AnyPath, Section
from firmware.config.venue import (DevicesConfig, OscConfig, ProjectorConfig, ProjectorNone, ScheduleConfig,
                                   TimeSyncConfig, TimeSyncSystem)
from firmware.show.lights import WIDTH as CHANNEL_WIDTH

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "default"


# ------------------------------------------------------------------------------------- show/model
class ShowConfig(Section):
    trigger_m: float = Field(2.0, le=100, gt=0, description="a visitor nearer than this starts the sequence")
    release_m: float = Field(3.0, le=100, gt=0, description="a visitor further than this has left")
    dwell_s: float = Field(0.5, le=DAY, ge=0, description="presence must hold this long before a trigger")
    leave_grace_s: float = Field(1.5, le=DAY, ge=0, description="absence must hold this long before release")
    cooldown_s: float = Field(3.0, le=DAY, ge=0, description="after a release, ignore triggers this long")
    approach_s: float = Field(1.5, le=DAY, gt=0, description="camera image fades in")
    immersion_s: float = Field(8.0, le=DAY, gt=0, description="the visitor dissolves into noise")
    emergence_s: float = Field(6.0, le=DAY, gt=0, description="new images grow out of the noise")
    hold_s: float = Field(10.0, le=DAY, gt=0, description="the grown images stay")
    release_s: float = Field(3.0, le=DAY, gt=0, description="fade back to idle")
    layout: Literal["full", "diptych"] = "diptych"
    footage: AnyPath | None = Field(None, description="folder/file of the studio's decay footage for "
                                                   "the idle; none = the shipped demo clip")
    footage_fps: float = Field(6.0, gt=0, le=60)
    drift_period_s: float = Field(20.0, le=DAY, gt=0, description="one slerp segment of the idle drift")
    seed_strength: float = Field(0.0, ge=0, le=1, description="0 = generate from pure noise; >0 = the "
                                 "visitor's image seeds the generation at this strength")
    sigma_peak: float = Field(80.0, gt=0, le=1000, description="noise level at the end of the immersion")
    decay: float = Field(0.6, ge=0, le=1, description="decay condition for generated matter")
    subjects: dict[str, float] = Field(default_factory=dict, description="weight of each of the model's "
                                       "subjects (footage folder names); a visitor's subject is drawn by "
                                       "weight; empty = all equally")

    @model_validator(mode="after")
    def _subject_weights(self):
        for name, w in self.subjects.items():
            if not (0 <= w < float("inf")) or not 0 < len(name) <= 64:
                raise ValueError(f"subjects.{name}: a weight must be a finite number >= 0 "
                                 f"(and a name 1-64 characters), got {w!r}")
        if self.subjects and not any(w > 0 for w in self.subjects.values()):
            raise ValueError("subjects: at least one weight must be > 0")
        return self

    @model_validator(mode="after")
    def _hysteresis(self):
        if self.release_m <= self.trigger_m:
            raise ValueError(f"release_m ({self.release_m}) must be greater than trigger_m "
                             f"({self.trigger_m}) so a visitor at the edge does not flicker the show")
        return self


class ModelConfig(Section):
    dir: AnyPath = DEFAULT_MODEL_DIR
    network: Literal["student", "teacher"] = "student"
    steps: int | None = Field(None, ge=1, le=100, description="sampling steps; manifest default if unset")
    engine: Literal["auto", "tensorrt", "onnxruntime"] = "auto"
    engine_cache: AnyPath = Path("/var/lib/humus/engines")
    threads: int = Field(0, ge=0, le=64, description="CPU threads for onnxruntime (0 = let it choose)")


# ----------------------------------------------------------------------------------------- lights
# The channel names are the fixture patch's own table (show/lights.WIDTH): one list, not two to keep equal.
Channel = Literal[tuple(CHANNEL_WIDTH)]


class Fixture(Section):
    name: str = Field(max_length=64)
    address: int = Field(ge=1, le=512, description="first DMX channel (1-based)")
    channels: list[Channel] = Field(min_length=1, max_length=512)
    fixed_value: int = Field(255, ge=0, le=255, description="value for 'fixed' channels (e.g. a mode)")


class Look(Section):
    intensity: float = Field(ge=0, le=1)
    color: RGB = Field(description="RGB in 0..1")
    noise_follow: float = Field(0.0, ge=0, le=1, description="how much intensity follows the noise level")
    strobe: float = Field(0.0, ge=0, le=1)


def _default_fixtures() -> list[Fixture]:
    return [Fixture(name="wash-left", address=1, channels=["dimmer", "red", "green", "blue", "white"]),
            Fixture(name="wash-right", address=6, channels=["dimmer", "red", "green", "blue", "white"]),
            Fixture(name="flicker", address=11, channels=["dimmer16", "strobe"])]


def _default_looks() -> dict[str, Look]:
    return {
        "idle": Look(intensity=0.35, color=(0.55, 0.42, 0.25)),
        "approach": Look(intensity=0.5, color=(0.7, 0.6, 0.45)),
        "immersion": Look(intensity=0.4, color=(0.6, 0.65, 0.75), noise_follow=1.0),
        "emergence": Look(intensity=0.7, color=(0.45, 0.75, 0.35), noise_follow=0.6),
        "hold": Look(intensity=0.6, color=(0.5, 0.7, 0.3)),
        "release": Look(intensity=0.35, color=(0.55, 0.42, 0.25)),
        "safe": Look(intensity=0.3, color=(0.6, 0.5, 0.35)),
    }


class LightsConfig(Section):
    fixtures: list[Fixture] = Field(default_factory=_default_fixtures, max_length=512)
    looks: dict[Literal["idle", "approach", "immersion", "emergence", "hold", "release", "safe"],
                Look] = Field(default_factory=_default_looks)
    fade_s: float = Field(1.0, ge=0, le=3600, description="cross-fade between looks")

    @model_validator(mode="after")
    def _patch_fits(self):
        from firmware.show.lights import check_patch  # pure, no I/O
        check_patch(self.fixtures)
        missing = set(_default_looks()) - set(self.looks)
        if missing:
            raise ValueError(f"looks missing for states: {sorted(missing)}")
        return self


class StatusConfig(Section):
    path: AnyPath = Path("/run/humus/status.json")
    state_dir: AnyPath = Path("/var/lib/humus")
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class Config(Section):
    camera: CameraConfig = Field(default_factory=CameraSim)
    presence: PresenceConfig = Field(default_factory=PresenceSim)
    dmx: DmxConfig = Field(default_factory=DmxSim)
    display: DisplayConfig = Field(default_factory=DisplayHeadless)
    show: ShowConfig = Field(default_factory=ShowConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    lights: LightsConfig = Field(default_factory=LightsConfig)
    status: StatusConfig = Field(default_factory=StatusConfig)
    # venue sections (venue.py): all optional, all off unless written
    devices: DevicesConfig = Field(default_factory=DevicesConfig)
    schedule: ScheduleConfig | None = None
    projector: ProjectorConfig = Field(default_factory=ProjectorNone)
    osc: OscConfig | None = None
    timesync: TimeSyncConfig = Field(default_factory=TimeSyncSystem)
