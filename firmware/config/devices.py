"""Config sections for the devices (camera, presence, DMX, display) and their device-only field
types (serial speeds, GPIO pins, sensor thresholds); schema.py adds these sections to the top-level
`Config`."""
from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Union

from pydantic import Field, Strict, model_validator

from firmware.config.section import DAY, AnyPath, IpPort, Section, by_type

# TOML has no tuple type: these take a list, their items stay strict.
ScriptPoint = Annotated[tuple[Annotated[float, Field(ge=0, le=DAY)], Annotated[float, Field(ge=0, le=100)]],
                        Strict(False)]
Pin = Union[Annotated[int, Field(ge=0, le=1023)], Annotated[str, Field(min_length=1, max_length=64)]]  # BCM or "BOARD11"
Backoff = Annotated[tuple[Annotated[float, Field(ge=0.05, le=3600)], Annotated[float, Field(ge=0.05, le=3600)]],
                    Strict(False)]
Baud = Annotated[int, Field(ge=300, le=4_000_000)]
# The presence thresholds auto-detection hands on to the sensor it finds: one bound for both places.
MinEnergy = Annotated[int, Field(ge=0, le=100)]
MinStrength = Annotated[int, Field(ge=0, le=65535)]


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
    # What the box reads from every camera section, fixed here: class constants, not fields, so
    # `[camera] type = "none"` accepts no other key and check-config prints none.
    mirror: ClassVar[bool] = False


class CameraAuto(_CameraCommon):
    """Found at start and on hotplug (firmware/devices/detect.py): Argus CSI, then V4L2, then none."""
    type: Literal["auto"]


CameraConfig = by_type(CameraSim, CameraFile, CameraV4L2, CameraArgus, CameraPicamera2, CameraNone, CameraAuto,
                       default="sim")


# --------------------------------------------------------------------------------------- presence
class _PresenceCommon(Section):
    stale_after_s: float = Field(2.0, gt=0, le=3600, description="no reading for this long = stale-sensor fault")


class PresenceSerial(_PresenceCommon):
    """A sensor on a serial port (presence/uart.py); each kind gives its own port name and baud rate."""
    port: str
    baud: Baud


class _PresenceGpio(_PresenceCommon):
    """A sensor on GPIO pins (presence/gpio.py)."""
    pin_factory: Literal["auto", "jetson", "gpiozero"] = Field(
        "auto", description="auto = Jetson.GPIO on a Jetson, else gpiozero's own choice")


class PresenceSim(_PresenceCommon):
    type: Literal["sim"] = "sim"
    script: list[ScriptPoint] = Field(min_length=1, max_length=10_000,
        default_factory=lambda: [(0.0, 6.0), (4.0, 6.0), (7.0, 1.0), (33.0, 1.0), (36.0, 6.0), (50.0, 6.0)],
        description="visitor distance over time: (seconds, metres) points, linearly interpolated")
    loop: bool = True
    rate_hz: float = Field(20.0, gt=0, le=1000)


class PresenceLD2410(PresenceSerial):
    type: Literal["ld2410"]
    port: str = "/dev/humus-radar"
    baud: Baud = 256000
    min_energy: MinEnergy = Field(10, description="ignore targets weaker than this")
    engineering: bool = Field(False, description="ask the radar for engineering reports (energy per "
                              "0.75 m gate) when the port opens; `humus calibrate` shows them")


class PresenceTFmini(PresenceSerial):
    type: Literal["tfmini"]
    port: str = "/dev/humus-lidar"
    baud: Baud = 115200
    min_strength: MinStrength = 100


class PresenceDistance(_PresenceGpio):
    type: Literal["distance"]
    echo_pin: Pin = 24
    trigger_pin: Pin = 23
    max_distance_m: float = Field(4.0, gt=0, le=10)
    rate_hz: float = Field(10.0, gt=0, le=50)


class PresenceMotion(_PresenceGpio):
    type: Literal["motion"]
    pin: Pin = 17
    # A PIR only says yes/no; the show maps "present" to this distance.
    present_distance_m: float = Field(1.0, gt=0, le=100)
    absent_distance_m: float = Field(8.0, gt=0, le=100)


class PresenceNone(_PresenceCommon):
    """No sensor: visitors come only through OSC (/humus/visitor, /humus/trigger)."""
    type: Literal["none"]


class PresenceAuto(_PresenceCommon):
    """An LD2410 or TFmini found on the serial ports ([devices] serial_ports), at start and on hotplug."""
    type: Literal["auto"]
    min_energy: MinEnergy = Field(10, description="as [presence] type = \"ld2410\"")
    min_strength: MinStrength = Field(100, description="as [presence] type = \"tfmini\"")


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


class _DmxSerial(_DmxCommon):
    """A USB widget (dmx/usb.py). Break and mark-after-break differ by widget: each kind bounds its own."""
    port: str = "/dev/humus-dmx"


class DmxEnttecPro(_DmxSerial):
    type: Literal["enttec-pro"]
    break_us: float = Field(100.0, ge=96, le=1355)
    mab_us: float = Field(12.0, ge=10.67, le=1355)


class DmxOpenDmx(_DmxSerial):
    type: Literal["open-dmx"]
    break_us: float = Field(120.0, ge=88, le=1000)
    mab_us: float = Field(16.0, ge=8, le=1000)


class DmxArtNet(_DmxCommon):
    type: Literal["artnet"]
    host: str = Field("255.255.255.255", description="node address or broadcast")
    port: IpPort = 6454
    universe: int = Field(0, ge=0, le=32767, description="15-bit port-address")


class DmxSacn(_DmxCommon):
    type: Literal["sacn"]
    host: str | None = Field(None, description="unicast address; multicast when unset")
    port: IpPort = 5568
    universe: int = Field(1, ge=1, le=63999)
    priority: int = Field(100, ge=0, le=200)
    source_name: str = Field("humus", max_length=63)
    cid: str | None = Field(None, description="16-byte UUID; derived from the machine id when unset")
    interface: str | None = Field(None, description="local IPv4 address to send multicast from; "
                                  "needed when the lighting network has no default route")

    @model_validator(mode="after")
    def _cid_is_uuid(self):
        if self.cid is not None:
            import uuid
            try:
                uuid.UUID(self.cid)
            except ValueError:
                raise ValueError(f"cid '{self.cid}' is not a UUID (e.g. 6f1c3c9e-...-...)") from None
        return self


class DmxNone(Section):
    type: Literal["none"]
    # What the box reads from every DMX section, fixed here (class constants, not fields, as for
    # CameraNone): nothing is sent, so the sender keeps its default rate and the safe look is dark.
    rate_hz: ClassVar[float] = 40.0
    channels: ClassVar[int] = 512
    safe_look: ClassVar[str] = "blackout"
    own_process: ClassVar[bool] = False


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
    framebuffer: Literal["auto", "renderer", "direct"] = Field(
        "auto", description="how frames reach the screen: SDL's GPU renderer (scales, vsync) or the X11 "
                            "shared-memory framebuffer (no GPU); auto picks by display/pygame_window.framebuffer_for")


DisplayConfig = by_type(DisplayHeadless, DisplayPygame, default="headless", aliases={"sim": "headless"})
