import pytest

from firmware.config.schema import Fixture, LightsConfig
from firmware.show.lights import LightLevel, build_universe, light_level, safe_universe


def test_8_and_16_bit_patch_bytes():
    fixtures = [Fixture(name="rgbw", address=1, channels=["dimmer", "red", "green", "blue", "white"]),
                Fixture(name="fine", address=10, channels=["dimmer16", "strobe", "fixed"], fixed_value=42)]
    u = build_universe(fixtures, LightLevel(0.5, (1.0, 0.5, 0.0), 0.25), 512)
    assert len(u) == 512
    assert list(u[0:5]) == [128, 255, 128, 0, 0]      # dimmer 0.5, colour at full, white = min(rgb)
    v16 = round(0.5 * 65535)
    assert list(u[9:13]) == [v16 >> 8, v16 & 0xFF, 64, 42]  # coarse, fine, strobe, fixed
    assert not any(u[13:])


def test_fixture_without_dimmer_scales_colour():
    u = build_universe([Fixture(name="rgb", address=3, channels=["red", "green", "blue"])],
                        LightLevel(0.5, (1.0, 1.0, 0.0), 0.0), 24)
    assert list(u[2:5]) == [128, 128, 0]


def test_intensity_follows_noise_and_crossfades():
    looks = LightsConfig().looks
    calm = light_level(looks, "immersion", "immersion", 10.0, 1.0, noise_level=0.0)
    storm = light_level(looks, "immersion", "immersion", 10.0, 1.0, noise_level=1.0)
    assert storm.intensity == pytest.approx(looks["immersion"].intensity)
    assert calm.intensity == pytest.approx(0.25 * looks["immersion"].intensity)
    mid = light_level(looks, "hold", "emergence", 0.5, 1.0, noise_level=0.0)
    assert looks["hold"].color[0] <= mid.color[0] <= looks["emergence"].color[0] or \
        looks["emergence"].color[0] <= mid.color[0] <= looks["hold"].color[0]


def test_safe_look_and_blackout():
    cfg = LightsConfig()
    assert safe_universe(cfg, "blackout") == bytes(512)
    calm = safe_universe(cfg, "calm")
    assert calm[0] == round(cfg.looks["safe"].intensity * 255)


def test_lights_follow_the_show_and_fade_from_their_own_previous_state():
    from firmware.show.lights import LightsState, follow_show, step_lights
    from firmware.show.machine import State
    looks = LightsConfig().looks
    lights = LightsState()
    lights, level = step_lights(looks, lights, State.IDLE, 0.0, 2.0, 0.0)
    assert lights == LightsState(State.IDLE, State.IDLE)
    lights, start = step_lights(looks, lights, State.APPROACH, 0.0, 2.0, 0.0)
    assert lights == LightsState(State.APPROACH, State.IDLE)
    assert start == light_level(looks, State.APPROACH, State.IDLE, 0.0, 2.0, 0.0)   # the fade starts at idle
    lights, _ = step_lights(looks, lights, State.APPROACH, 1.0, 2.0, 0.0)
    assert lights.previous == State.IDLE                                         # same state: same fade
    # After closed hours the fade starts at the idle look, not at the schedule's closed look.
    lights = follow_show(lights, State.CLOSED)
    lights, level = step_lights(looks, lights, State.IDLE, 0.0, 2.0, 0.0)
    assert lights.previous == State.CLOSED
    assert level == light_level(looks, State.IDLE, State.IDLE, 0.0, 2.0, 0.0)
