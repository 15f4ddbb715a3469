"""Lights: a fixture patch and looks, turned into a DMX universe. Pure.

A look (intensity, colour, strobe, how much it follows the noise) per show state; the Cue's noise
level modulates intensity, so the lights breathe with the dissolve. 16-bit channels ("dimmer16",
"red16", ...) take two slots, coarse then fine, as DMX fixtures expect.
"""
from __future__ import annotations

from dataclasses import dataclass


from firmware.show.machine import State

WIDTH = {"dimmer": 1, "red": 1, "green": 1, "blue": 1, "white": 1, "amber": 1, "strobe": 1,
         "fixed": 1, "dimmer16": 2, "red16": 2, "green16": 2, "blue16": 2}


def check_patch(fixtures) -> None:
    """Reject fixtures that overlap or run past slot 512, naming both fixtures and the slot."""
    owner: dict[int, str] = {}
    for f in fixtures:
        width = sum(WIDTH[c] for c in f.channels)
        last = f.address + width - 1
        if last > 512:
            raise ValueError(f"fixture '{f.name}' at {f.address} needs {width} channels and runs "
                             f"past slot 512 (to {last})")
        for slot in range(f.address, last + 1):
            if slot in owner:
                raise ValueError(f"fixtures '{owner[slot]}' and '{f.name}' both use DMX slot {slot}")
            owner[slot] = f.name


@dataclass(frozen=True)
class LightLevel:
    """What every fixture should do now, before patching: 0..1 values."""
    intensity: float
    color: tuple[float, float, float]
    strobe: float


def blend_looks(a, b, w: float) -> tuple[float, tuple[float, float, float], float, float]:
    w = min(max(w, 0.0), 1.0)
    mix = lambda x, y: x + (y - x) * w  # noqa: E731
    color = tuple(mix(x, y) for x, y in zip(a.color, b.color))
    return (mix(a.intensity, b.intensity), color, mix(a.strobe, b.strobe),
            mix(a.noise_follow, b.noise_follow))


def light_level(looks, state: str, previous: str, since_s: float, fade_s: float,
                noise_level: float) -> LightLevel:
    """The look for `state`, cross-faded from `previous` over fade_s, modulated by the noise level.

    Following the noise: intensity = base * (1 - follow + follow * (0.25 + 0.75 * noise)), so at full
    follow the light sinks to a quarter when the picture is clean and opens fully in the sea of noise.
    """
    w = 1.0 if fade_s <= 0 else since_s / fade_s
    intensity, color, strobe, follow = blend_looks(looks[previous], looks[state], w)
    n = min(max(noise_level, 0.0), 1.0)
    intensity *= (1.0 - follow) + follow * (0.25 + 0.75 * n)
    return LightLevel(intensity=min(max(intensity, 0.0), 1.0), color=color, strobe=strobe)


@dataclass(frozen=True)
class LightsState:
    """What the lights follow: the show state they show, and the one they fade from."""
    state: State = State.IDLE
    previous: State = State.IDLE


def follow_show(lights: LightsState, state: State) -> LightsState:
    """The lights after a frame of the show in `state`: a new state starts a fade from the old one."""
    return lights if state == lights.state else LightsState(state, lights.state)


def step_lights(looks, lights: LightsState, state: State, since_s: float, fade_s: float,
                noise_level: float) -> tuple[LightsState, LightLevel]:
    """One frame of the lights, fed by the show: their new state and the level to send."""
    lights = follow_show(lights, state)
    # Opening after closed hours fades up from the idle look's place: the closed look is the
    # schedule's, not one of the show's looks.
    previous = State.IDLE if lights.previous == State.CLOSED else lights.previous
    return lights, light_level(looks, state, previous, since_s, fade_s, noise_level)


def _put(universe: bytearray, slot: int, value: float, width: int) -> None:
    """Write a 0..1 value at a 1-based slot, 8 or 16 bits (coarse, fine)."""
    v = min(max(value, 0.0), 1.0)
    if width == 1:
        universe[slot - 1] = int(round(v * 255))
    else:
        v16 = int(round(v * 65535))
        universe[slot - 1] = v16 >> 8
        universe[slot] = v16 & 0xFF


def build_universe(fixtures, level: LightLevel, channels: int = 512, *, master: float = 1.0,
                   blackout: bool = False) -> bytes:
    """The one place a universe is made: the show's looks, the closed look and the safe look all
    come through here. A light level patched onto every fixture, scaled by the master (the OSC
    intensity), or all zeros in a blackout. RGB fixtures get colour at full and the dimmer sets
    brightness; fixtures without a dimmer get colour scaled by intensity."""
    universe = bytearray(channels)
    if blackout:
        return bytes(universe)
    intensity = level.intensity * master
    for f in fixtures:
        has_dimmer = any(c in ("dimmer", "dimmer16") for c in f.channels)
        scale = 1.0 if has_dimmer else intensity
        r, g, b = (c * scale for c in level.color)
        white = min(r, g, b)
        values = {"dimmer": intensity, "dimmer16": intensity, "red": r, "red16": r,
                  "green": g, "green16": g, "blue": b, "blue16": b, "white": white, "amber": min(r, g) * 0.5,
                  "strobe": level.strobe, "fixed": f.fixed_value / 255.0}
        slot = f.address
        for ch in f.channels:
            if slot + WIDTH[ch] - 1 <= channels:
                _put(universe, slot, values[ch], WIDTH[ch])
            slot += WIDTH[ch]
    return bytes(universe)


def look_level(look) -> LightLevel:
    """A still look (the closed or the safe one) as a light level: no noise to follow, no strobe."""
    return LightLevel(look.intensity, tuple(look.color), 0.0)


DARK = LightLevel(0.0, (0.0, 0.0, 0.0), 0.0)


def frame_lights(lights_cfg, closed_look, lights: LightsState, shown: State, since_s: float,
                 noise_level: float) -> tuple[LightsState, LightLevel]:
    """One frame of the lights, whatever the frame showed: the show's looks while open, the
    schedule's closed look (dark when it has none) outside opening hours."""
    if shown == State.CLOSED:
        return follow_show(lights, State.CLOSED), look_level(closed_look) if closed_look else DARK
    return step_lights(lights_cfg.looks, lights, shown, since_s, lights_cfg.fade_s, noise_level)


def safe_universe(lights_cfg, kind: str, channels: int = 512) -> bytes:
    """The look sent at shutdown / in safe mode: a calm warm light, or blackout."""
    return build_universe(lights_cfg.fixtures, look_level(lights_cfg.looks["safe"]), channels,
                          blackout=kind == "blackout")
