"""Config sections for running at a venue: device auto-detection, opening hours, whether the clock
can be believed, projector power and OSC show control. Kept apart from schema.py so each section stays a small, self-contained model;
schema.py only adds them to the top-level `Config`.

All of them are optional: a config without `[schedule]` is always open, without `[osc]` no port is
opened, and `[projector] type = "none"` (the default) never touches the projector. `[timesync]` (default
`type = "system"`) only matters to a box with a `[schedule]`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, Strict, field_validator, model_validator

from firmware.config.section import DAY, AnyPath, IpPort, Section, by_type
from firmware.osc_allow import is_loopback_host, only_loopback, parse_network

# TOML arrays arrive as lists; a tuple field takes them (strict=False on the field) but each number in
# it stays strict: "1" and true are not numbers.
StrictNumber = Annotated[float, Strict()]

DEFAULT_SERIAL_GLOBS = ["/dev/serial/by-id/*", "/dev/ttyUSB*", "/dev/ttyACM*", "/dev/ttyTHS*"]


# ---------------------------------------------------------------------------------------- devices
class DevicesConfig(Section):
    """Where `type = "auto"` looks. Globs are tried in order: the first (stable) name of a port wins."""
    serial_ports: list[str] = Field(default_factory=lambda: list(DEFAULT_SERIAL_GLOBS))
    cameras: list[str] = Field(default_factory=lambda: ["/dev/v4l/by-id/*", "/dev/v4l/by-path/*",
                                                        "/dev/video*"])
    sysfs: Path = Field(Path("/sys"), strict=False, description="where sysfs is mounted (tests: a fake tree)")
    rescan_s: float = Field(1.0, gt=0, le=60, description="look for newly plugged devices this often")
    probe_s: float = Field(0.3, gt=0, le=5, description="listen this long per probe step")


# --------------------------------------------------------------------------------------- schedule
class ClosedLook(Section):
    intensity: float = Field(ge=0, le=1)
    color: tuple[StrictNumber, StrictNumber, StrictNumber] = Field(strict=False)

    @field_validator("color")
    @classmethod
    def _unit(cls, v):
        if not all(math.isfinite(c) and 0 <= c <= 1 for c in v):
            raise ValueError("color is RGB in 0..1")
        return v


class ScheduleConfig(Section):
    timezone: str = Field(description="IANA name, e.g. Europe/Berlin")
    open: list[str] = Field(min_length=1, description='windows, e.g. "mon-fri 10:00-18:00"')
    closed_dates: list[str] = Field(default_factory=list, description="YYYY-MM-DD: no window starts")
    warmup_s: float = Field(90.0, ge=0, le=3600, description="projector on this long before opening")
    closed_look: ClosedLook | None = Field(None, description="lights while closed; unset = blackout")
    unsynced: Literal["open", "closed", "schedule"] = Field(
        "open", description="while the clock is not synchronised ([timesync]): stay open, stay closed, "
        "or follow the hours on the clock the box has")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        from firmware.show.schedule import load_zone
        load_zone(v)   # raises ValueError naming the zone and what is missing
        return v

    @field_validator("open", "closed_dates")
    @classmethod
    def _each_parses(cls, v, info):
        from firmware.show.schedule import parse_date, parse_window
        parse = parse_window if info.field_name == "open" else parse_date
        for text in v:
            parse(text)   # raises ValueError naming the text and what is wrong with it
        return v


# --------------------------------------------------------------------------------------- timesync
class TimeSyncSystem(Section):
    """Ask the system whether its clock is synchronised (firmware/devices/timesync/system.py)."""
    type: Literal["system"] = "system"
    check_s: float = Field(5.0, gt=0, le=3600, description="look again this often while not synchronised")
    root: AnyPath = Field(Path("/"), description="where /run and /var/lib are (tests: a fake tree)")
    kernel: bool = Field(True, description="also ask the kernel's NTP status (adjtimex), as timedatectl "
                         "does; the hardened unit's ProtectClock denies it, the timesyncd files remain")


class TimeSyncTrusted(Section):
    """The clock is always right: an RTC with a battery, set by hand, and no network."""
    type: Literal["trusted"]


class TimeSyncSim(Section):
    type: Literal["sim"]
    synced: bool = Field(True, description="synchronised from the start")
    synced_after_s: float | None = Field(None, ge=0, le=DAY, description="start unsynchronised and "
                                         "become synchronised this long after the source opens (the network "
                                         "comes up)")

    @model_validator(mode="after")
    def _one_story(self):
        if self.synced_after_s is not None and "synced" in self.model_fields_set:
            raise ValueError("synced_after_s starts the clock unsynchronised: leave synced out")
        return self


TimeSyncConfig = by_type(TimeSyncSystem, TimeSyncTrusted, TimeSyncSim, default="system")


# -------------------------------------------------------------------------------------- projector
class _ProjectorCommon(Section):
    retry_s: tuple[StrictNumber, StrictNumber] = Field((2.0, 60.0), strict=False,
                                                       description="first and longest retry wait")
    timeout_s: float = Field(5.0, gt=0, le=60, description="one command's time to answer")

    @field_validator("retry_s")
    @classmethod
    def _retry(cls, v):
        if not all(math.isfinite(x) and x > 0 for x in v) or v[0] > v[1]:
            raise ValueError("retry_s must be two positive numbers, first <= second")
        return v


class ProjectorNone(Section):
    type: Literal["none"] = "none"


class ProjectorSim(_ProjectorCommon):
    type: Literal["sim"]


class ProjectorPJLink(_ProjectorCommon):
    type: Literal["pjlink"]
    host: str
    port: IpPort = 4352
    password: str | None = Field(None, max_length=32, description="PJLink password, if the "
                                 "projector asks for one")


class ProjectorCec(_ProjectorCommon):
    type: Literal["cec"]
    device: str = "/dev/cec0"
    command: str = Field("cec-ctl", description="the cec-ctl binary (v4l-utils)")
    to: int = Field(0, ge=0, le=15, description="logical address of the projector (0 = TV)")


ProjectorConfig = by_type(ProjectorNone, ProjectorSim, ProjectorPJLink, ProjectorCec, default="none")


# -------------------------------------------------------------------------------------------- osc
def parse_hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"'{text}' is not host:port (e.g. 127.0.0.1:9000)")
    return host, int(port)


def _network(text: str) -> str:
    parse_network(text)   # raises ValueError naming the entry and what is wrong with it
    return text


class OscConfig(Section):
    listen: str | None = Field(None, description='"host:port" to receive on; unset = send only')
    send: list[str] = Field(default_factory=list, description='"host:port" targets for state out')
    allow: list[Annotated[str, AfterValidator(_network)]] | None = Field(
        None, max_length=256, description='senders OSC is taken from: addresses and networks '
        '("192.168.1.20", "10.0.0.0/24"); unset = loopback and the send hosts; ["0.0.0.0/0"] = any IPv4')
    max_rate_hz: float = Field(200.0, gt=0, le=10000, description="messages in per second; more are dropped")
    noise_hz: float = Field(20.0, ge=10, le=120, description="/humus/noise rate in immersion and emergence")

    @field_validator("allow")
    @classmethod
    def _someone(cls, v):
        if v is not None and not v:
            raise ValueError("an empty list refuses every sender: leave allow out for the default "
                             "(loopback and the send hosts), or list the show controllers")
        return v

    @field_validator("listen", "send")
    @classmethod
    def _hostports(cls, v):
        for text in [v] if isinstance(v, str) else v or ():
            parse_hostport(text)
        return v

    def warnings(self) -> list[str]:
        """What loads but is likely not meant (check-config and doctor say it; nothing refuses it)."""
        if self.listen is None or is_loopback_host(parse_hostport(self.listen)[0]):
            return []   # not listening, or only to this machine: nobody elsewhere is cut off
        if self.allow is not None:
            local = only_loopback(parse_network(t) for t in self.allow)
        else:
            local = all(is_loopback_host(parse_hostport(t)[0]) for t in self.send)
        if not local:
            return []
        return [f"osc: listening on {self.listen} but only loopback may send (osc.allow "
                f"{'lists only loopback' if self.allow is not None else 'is unset and every send host is local'}): "
                "a show controller on another machine would be silently refused; add it to osc.allow "
                "(or to osc.send)"]
