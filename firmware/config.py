"""The box's configuration: one TOML file, validated once, strictly.

Strict means: no coercion (`fps = true`, `height = "1080"`, `own_process = "yes"` are errors, an
integer is accepted where a float is meant), finite numbers only (no nan/inf), every number, string
and list bounded, and the file itself at most MAX_CONFIG_BYTES.

Every device section picks its backend with a `type` key (`"sim"` is always available), so simulated
and real devices mix freely. Unknown keys are rejected with the nearest valid key suggested; the error
names the file, the section and the key. Nothing downstream ever sees the raw TOML.
"""
from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Strict, Tag, ValidationError, model_validator

from firmware.config_venue import DevicesConfig, OscConfig, ProjectorConfig, ProjectorNone, ScheduleConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 on older JetPacks
    import tomli as tomllib

DEFAULT_PATHS = (Path("/etc/humus/humus.toml"),)
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "default"


class ConfigError(Exception):
    """A config that cannot be used. The message names the file and every offending key."""


MAX_CONFIG_BYTES = 1 << 20     # a config is a few KiB; `check-config /dev/zero` must not eat the memory
DAY = 86_400.0                 # the longest any duration may be


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False,
                              str_max_length=4096)


# TOML has no tuple or path type: these take a list / a string, their items stay strict.
AnyPath = Annotated[Path, Strict(False)]
Unit = Annotated[float, Field(ge=0, le=1)]
RGB = Annotated[tuple[Unit, Unit, Unit], Strict(False)]
ScriptPoint = Annotated[tuple[Annotated[float, Field(ge=0, le=DAY)], Annotated[float, Field(ge=0, le=100)]],
                        Strict(False)]
Pin = Union[Annotated[int, Field(ge=0, le=1023)], Annotated[str, Field(min_length=1, max_length=64)]]  # BCM or "BOARD11"
Backoff = Annotated[tuple[Annotated[float, Field(ge=0.05, le=3600)], Annotated[float, Field(ge=0.05, le=3600)]],
                    Strict(False)]


def by_type(*models: type[BaseModel], default: str, aliases: dict[str, str] | None = None):
    """A device section: the `type` key picks the backend's model; a section without `type` gets
    `default`. Unknown types fall through to pydantic's error, which lists the valid tags."""
    aliases = aliases or {}

    def pick(v: Any) -> str:
        t = v.get("type", default) if isinstance(v, dict) else getattr(v, "type", default)
        if not isinstance(t, str):   # `type = []`: an unknown backend, named in the error, not a crash
            return repr(t)
        return aliases.get(t, t)
    tagged = tuple(Annotated[m, Tag(_tag(m))] for m in models)
    return Annotated[Union[tagged], Discriminator(pick)]


def _tag(model: type[BaseModel]) -> str:
    import typing
    return typing.get_args(model.model_fields["type"].annotation)[0]


# ----------------------------------------------------------------------------------------- camera
class _CameraCommon(Section):
    width: int = Field(640, ge=16, le=7680, description="capture width in pixels")
    height: int = Field(480, ge=16, le=4320, description="capture height in pixels")
    fps: float = Field(30.0, gt=0, le=240)
    stall_timeout_s: float = Field(2.0, gt=0, le=3600, description="no new frame for this long = stalled")
    frozen_timeout_s: float = Field(3.0, gt=0, le=3600, description="identical frames for this long = frozen")
    # (first, longest) wait between reconnects; a zero or negative wait would retry (and log, and
    # run the escalation command) in a tight loop
    reconnect_backoff_s: Backoff = (0.5, 30.0)
    escalation_command: str | None = Field(
        None, description="run after repeated failed reconnects, e.g. 'systemctl restart nvargus-daemon'")
    escalate_after: int = Field(3, ge=1, le=1000, description="failed reconnects before the escalation command")
    mirror: bool = True

    @model_validator(mode="after")
    def _backoff_grows(self):
        first, longest = self.reconnect_backoff_s
        if first > longest:
            raise ValueError(f"reconnect_backoff_s: the first wait ({first:g} s) is longer than the "
                             f"longest ({longest:g} s)")
        return self


class CameraSim(_CameraCommon):
    type: Literal["sim"] = "sim"


class CameraFile(_CameraCommon):
    type: Literal["file"]
    path: AnyPath = Field(description="a video file or a folder of images, played in a loop")


class CameraV4L2(_CameraCommon):
    type: Literal["v4l2"]
    device: str = Field("/dev/humus-camera", description="stable udev path, e.g. /dev/v4l/by-path/...")


class CameraArgus(_CameraCommon):
    type: Literal["argus"]
    sensor_id: int = Field(0, ge=0, le=7)


class CameraPicamera2(_CameraCommon):
    type: Literal["picamera2"]


class CameraNone(Section):
    type: Literal["none"]


class CameraAuto(_CameraCommon):
    """Found at start and on hotplug (firmware/devices/detect.py): Argus CSI, then V4L2, then none."""
    type: Literal["auto"]


CameraConfig = by_type(CameraSim, CameraFile, CameraV4L2, CameraArgus, CameraPicamera2, CameraNone, CameraAuto,
                       default="sim")


# --------------------------------------------------------------------------------------- presence
class _PresenceCommon(Section):
    stale_after_s: float = Field(2.0, gt=0, le=3600, description="no reading for this long = stale-sensor fault")


class PresenceSim(_PresenceCommon):
    type: Literal["sim"] = "sim"
    script: list[ScriptPoint] = Field(min_length=1, max_length=10_000,
        default_factory=lambda: [(0.0, 6.0), (4.0, 6.0), (7.0, 1.0), (33.0, 1.0), (36.0, 6.0), (50.0, 6.0)],
        description="visitor distance over time: (seconds, metres) points, linearly interpolated")
    loop: bool = True
    rate_hz: float = Field(20.0, gt=0, le=1000)


class PresenceLD2410(_PresenceCommon):
    type: Literal["ld2410"]
    port: str = "/dev/humus-radar"
    baud: int = Field(256000, ge=300, le=4_000_000)
    min_energy: int = Field(10, ge=0, le=100, description="ignore targets weaker than this")
    engineering: bool = Field(False, description="ask the radar for engineering reports (energy per "
                              "0.75 m gate) when the port opens; `humus calibrate` shows them")


class PresenceTFmini(_PresenceCommon):
    type: Literal["tfmini"]
    port: str = "/dev/humus-lidar"
    baud: int = Field(115200, ge=300, le=4_000_000)
    min_strength: int = Field(100, ge=0, le=65535)


class PresenceDistance(_PresenceCommon):
    type: Literal["distance"]
    echo_pin: Pin = 24
    trigger_pin: Pin = 23
    max_distance_m: float = Field(4.0, gt=0, le=10)
    rate_hz: float = Field(10.0, gt=0, le=50)
    pin_factory: Literal["auto", "jetson", "gpiozero"] = Field(
        "auto", description="auto = Jetson.GPIO on a Jetson, else gpiozero's own choice")


class PresenceMotion(_PresenceCommon):
    type: Literal["motion"]
    pin: Pin = 17
    # A PIR only says yes/no; the show maps "present" to this distance.
    present_distance_m: float = Field(1.0, gt=0, le=100)
    absent_distance_m: float = Field(8.0, gt=0, le=100)
    pin_factory: Literal["auto", "jetson", "gpiozero"] = Field(
        "auto", description="auto = Jetson.GPIO on a Jetson, else gpiozero's own choice")


class PresenceNone(_PresenceCommon):
    """No sensor: visitors come only through OSC (/humus/visitor, /humus/trigger)."""
    type: Literal["none"]


class PresenceAuto(_PresenceCommon):
    """An LD2410 or TFmini found on the serial ports ([devices] serial_ports), at start and on hotplug."""
    type: Literal["auto"]
    min_energy: int = Field(10, ge=0, le=100, description="as [presence] type = \"ld2410\"")
    min_strength: int = Field(100, ge=0, le=65535, description="as [presence] type = \"tfmini\"")


PresenceConfig = by_type(PresenceSim, PresenceLD2410, PresenceTFmini, PresenceDistance, PresenceMotion,
                         PresenceNone, PresenceAuto, default="sim")


# -------------------------------------------------------------------------------------------- dmx
class _DmxCommon(Section):
    rate_hz: float = Field(40.0, gt=0, le=44, description="universe refresh rate (DMX tops out ~44 Hz)")
    channels: int = Field(512, ge=24, le=512, description="slots sent per frame")
    safe_look: Literal["blackout", "calm"] = "calm"
    own_process: bool = Field(True, description="send from a process of its own, out of reach of the "
                              "GIL (steady 40 Hz); sim transports stay in-process so they can record")


class DmxSim(_DmxCommon):
    type: Literal["sim"] = "sim"
    record: bool = True


class DmxEnttecPro(_DmxCommon):
    type: Literal["enttec-pro"]
    port: str = "/dev/humus-dmx"
    break_us: float = Field(100.0, ge=96, le=1355)
    mab_us: float = Field(12.0, ge=10.67, le=1355)


class DmxOpenDmx(_DmxCommon):
    type: Literal["open-dmx"]
    port: str = "/dev/humus-dmx"
    break_us: float = Field(120.0, ge=88, le=1000)
    mab_us: float = Field(16.0, ge=8, le=1000)


class DmxArtNet(_DmxCommon):
    type: Literal["artnet"]
    host: str = Field("255.255.255.255", description="node address or broadcast")
    port: int = Field(6454, ge=1, le=65535)
    universe: int = Field(0, ge=0, le=32767, description="15-bit port-address")


class DmxSacn(_DmxCommon):
    type: Literal["sacn"]
    host: str | None = Field(None, description="unicast address; multicast when unset")
    port: int = Field(5568, ge=1, le=65535)
    universe: int = Field(1, ge=1, le=63999)
    priority: int = Field(100, ge=0, le=200)
    source_name: str = Field("humus", max_length=63)
    cid: str | None = Field(None, description="16-byte UUID; derived from the machine id when unset")

    @model_validator(mode="after")
    def _cid_is_uuid(self):
        if self.cid is not None:
            import uuid
            try:
                uuid.UUID(self.cid)
            except ValueError:
                raise ValueError(f"cid '{self.cid}' is not a UUID (e.g. 6f1c3c9e-...-...)") from None
        return self
    interface: str | None = Field(None, description="local IPv4 address to send multicast from; "
                                  "needed when the lighting network has no default route")


class DmxNone(Section):
    type: Literal["none"]


class DmxAuto(_DmxCommon):
    """An Enttec USB Pro found on the serial ports. Network lights are never scanned for: configure
    artnet/sacn. A port that answers no probe becomes Open DMX only with unknown_as_open_dmx."""
    type: Literal["auto"]
    unknown_as_open_dmx: bool = Field(False, description="use the first silent adapter as Open DMX "
                                      "(it gets DMX breaks: only for a box with nothing else on USB)")


DmxConfig = by_type(DmxSim, DmxEnttecPro, DmxOpenDmx, DmxArtNet, DmxSacn, DmxNone, DmxAuto, default="sim")


# ---------------------------------------------------------------------------------------- display
class _DisplayCommon(Section):
    width: int = Field(1920, ge=64, le=7680)
    height: int = Field(1080, ge=64, le=4320)
    fps: float = Field(60.0, gt=0, le=240)


class DisplayHeadless(_DisplayCommon):
    type: Literal["headless", "sim"] = "headless"


class DisplayPygame(_DisplayCommon):
    type: Literal["pygame"]
    driver: Literal["auto", "x11", "kmsdrm", "wayland"] = "auto"
    fullscreen: bool = True
    reconnect_s: float = Field(2.0, gt=0, le=3600, description="retry opening a missing projector this often")


DisplayConfig = by_type(DisplayHeadless, DisplayPygame, default="headless", aliases={"sim": "headless"})


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
Channel = Literal["dimmer", "dimmer16", "red", "green", "blue", "white", "amber", "strobe",
                  "red16", "green16", "blue16", "fixed"]


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
    # venue sections (config_venue.py): all optional, all off unless written
    devices: DevicesConfig = Field(default_factory=DevicesConfig)
    schedule: ScheduleConfig | None = None
    projector: ProjectorConfig = Field(default_factory=ProjectorNone)
    osc: OscConfig | None = None


# ---------------------------------------------------------------------------------------- loading
def _model_for(loc: tuple, root: type[BaseModel] = Config, data: Any = None) -> list[str]:
    """Valid keys at the place an error points to (for 'did you mean')."""
    model: Any = root
    node = data
    for part in loc[:-1]:
        fields = getattr(model, "model_fields", None)
        if fields is None:
            return []
        if part in fields:
            ann = fields[part].annotation
            node = node.get(part) if isinstance(node, dict) else None
            model = _resolve(ann, node)
        elif isinstance(part, str) and hasattr(model, "model_fields"):
            # discriminated union tag (e.g. 'v4l2') or list index: stay on the current model
            continue
        else:
            continue
    return list(getattr(model, "model_fields", {}).keys())


def _resolve(ann: Any, node: Any) -> Any:
    import types
    import typing
    args = typing.get_args(ann)
    if typing.get_origin(ann) is Annotated:
        return _resolve(args[0], node)
    if args and typing.get_origin(ann) in (Union, types.UnionType):   # UnionType: `X | None`
        kind = node.get("type") if isinstance(node, dict) else None
        for a in args:
            t = getattr(a, "model_fields", {}).get("type")
            if t is not None and kind in typing.get_args(t.annotation):
                return a
        return args[0]
    if args and typing.get_origin(ann) in (list, dict):
        return _resolve(args[-1], None)
    return ann


def _describe(err: dict, data: dict) -> str:
    loc = tuple(err["loc"])
    # Drop discriminator tags ('v4l2') from the printed location: a tech thinks in sections and keys.
    shown = [str(p) for p in loc if not (isinstance(p, str) and "-" in p or p in _TAGS)]
    where = ".".join(shown) or "(top level)"
    if err["type"] == "extra_forbidden":
        valid = _model_for(loc, data=data)
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (valid keys: {', '.join(valid)})"
        return f"{where}: unknown key{hint}"
    if err["type"] == "union_tag_invalid":
        ctx = err.get("ctx", {})
        return f"{where}.type: unknown backend '{ctx.get('tag')}' (valid: {ctx.get('expected_tags')})"
    return f"{where}: {err['msg']}"


_TAGS = {"sim", "file", "v4l2", "argus", "picamera2", "none", "ld2410", "tfmini", "distance",
         "motion", "artnet", "sacn", "headless", "pygame", "auto", "pjlink", "cec"}


def parse_config(data: dict, source: str = "<built-in defaults>") -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: {_describe(e, data)}" for e in exc.errors()]
        raise ConfigError("invalid config\n  " + "\n  ".join(lines)) from None


def find_config(explicit: str | Path | None) -> Path | None:
    """--config wins, then /etc/humus/humus.toml, then the built-in defaults (None)."""
    if explicit is not None:
        return Path(explicit)
    for path in DEFAULT_PATHS:
        if path.is_file():
            return path
    return None


def load_config(path: str | Path | None = None, *, search: bool = True) -> Config:
    """Load and validate once. `path=None` searches the default places (or uses defaults)."""
    found = find_config(path) if search else (Path(path) if path else None)
    if found is None:
        return Config()
    try:
        with open(found, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{found}: over {MAX_CONFIG_BYTES} bytes; not a humus config")
        data = tomllib.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{found}: no such file") from None
    except (tomllib.TOMLDecodeError, RecursionError) as exc:   # RecursionError: [[[[... nested
        raise ConfigError(f"{found}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{found}: cannot read: {exc}") from None
    config = parse_config(data, str(found))
    return _resolve_relative_paths(config, found.parent)


def load_config_or_exit(path: str | Path | None) -> Config:
    """The commands' way in (run, bench, safe): a config that does not load ends the command with
    its message and exit status 2, never a traceback."""
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"humus: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _resolve_relative_paths(config: Config, base: Path) -> Config:
    """Relative paths in a config file are relative to that file, not to wherever the box started."""
    def fix(p):
        return p if p is None or p.is_absolute() else (base / p)
    show = config.show.model_copy(update={"footage": fix(config.show.footage)})
    model = config.model.model_copy(update={"dir": fix(config.model.dir)})
    update = {"show": show, "model": model}
    if isinstance(config.camera, CameraFile):
        update["camera"] = config.camera.model_copy(update={"path": fix(config.camera.path)})
    return config.model_copy(update=update)


def dump_config(config: Config) -> str:
    """The merged config as TOML-ish text (what `humus check-config` prints)."""
    out: list[str] = []
    data = config.model_dump(mode="json")
    for section, body in data.items():
        if body is None:   # an optional section left out ([schedule], [osc])
            out.append(f"# [{section}] not set\n")
            continue
        scalars = {k: v for k, v in body.items() if not isinstance(v, (dict, list)) or
                   (isinstance(v, list) and all(not isinstance(i, dict) for i in v))}
        out.append(f"[{section}]")
        for k, v in scalars.items():
            out.append(f"{k} = {_toml_value(v)}")
        for k, v in body.items():
            if k in scalars:
                continue
            if isinstance(v, list):
                for item in v:
                    out.append(f"\n[[{section}.{k}]]")
                    out.extend(f"{ik} = {_toml_value(iv)}" for ik, iv in item.items())
            elif isinstance(v, dict) and not all(isinstance(i, dict) for i in v.values()):
                out.append(f"\n[{section}.{k}]")   # one nested table, e.g. schedule.closed_look
                out.extend(f"{ik} = {_toml_value(iv)}" for ik, iv in v.items())
            elif isinstance(v, dict):
                for name, item in v.items():
                    out.append(f"\n[{section}.{k}.{name}]")
                    out.extend(f"{ik} = {_toml_value(iv)}" for ik, iv in item.items())
        out.append("")
    return "\n".join(out)


def _toml_value(v: Any) -> str:
    if v is None:
        return '""  # unset'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(i) for i in v) + "]"
    return repr(v)
