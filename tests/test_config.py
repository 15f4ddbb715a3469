import subprocess
import sys
from pathlib import Path

import pytest

from firmware.config.errors import ConfigError
from firmware.config.load import load_config, parse_config
from firmware.config.schema import Config

EXAMPLE = Path(__file__).resolve().parents[1] / "firmware" / "data" / "humus.example.toml"


def write(tmp_path, text):
    p = tmp_path / "humus.toml"
    p.write_text(text)
    return p


def test_defaults_are_all_simulated():
    c = Config()
    assert (c.camera.type, c.presence.type, c.dmx.type, c.display.type) == ("sim", "sim", "sim", "headless")


def test_unknown_key_names_file_section_and_suggests(tmp_path):
    p = write(tmp_path, '[camera]\ntype = "v4l2"\ndevcie = "/dev/video0"\n')
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert str(p) in msg and "camera.devcie" in msg and "did you mean 'device'" in msg


def test_range_and_unknown_backend(tmp_path):
    p = write(tmp_path, '[dmx]\ntype = "sacn"\nuniverse = 70000\n')
    with pytest.raises(ConfigError, match=r"dmx.universe: Input should be less than or equal to 63999"):
        load_config(p)
    p = write(tmp_path, '[presence]\ntype = "sonar"\n')
    with pytest.raises(ConfigError, match="presence.type: unknown backend 'sonar'"):
        load_config(p)


def test_hysteresis_and_patch_overlap_rejected():
    with pytest.raises(ConfigError, match="release_m"):
        parse_config({"show": {"trigger_m": 3.0, "release_m": 2.0}})
    fixtures = [{"name": "a", "address": 1, "channels": ["dimmer", "red"]},
                {"name": "b", "address": 2, "channels": ["dimmer16"]}]
    with pytest.raises(ConfigError, match="'a' and 'b' both use DMX slot 2"):
        parse_config({"lights": {"fixtures": fixtures}})


def test_bad_toml_names_file(tmp_path):
    p = write(tmp_path, "[show\n")
    with pytest.raises(ConfigError, match=f"{p}: not valid TOML"):
        load_config(p)


def test_mixed_devices_and_relative_paths(tmp_path):
    p = write(tmp_path, '[dmx]\ntype = "enttec-pro"\nport = "/dev/pts/9"\n'
                        '[presence]\ntype = "ld2410"\nport = "/dev/pts/8"\n'
                        '[model]\ndir = "mymodel"\n')
    c = load_config(p)
    assert c.dmx.type == "enttec-pro" and c.dmx.port == "/dev/pts/9"
    assert c.presence.type == "ld2410" and c.camera.type == "sim"
    assert c.model.dir == tmp_path / "mymodel"


def test_example_config_is_complete_and_valid():
    c = load_config(EXAMPLE)
    assert c.show.trigger_m < c.show.release_m
    # every section of the schema is documented in the example
    text = EXAMPLE.read_text()
    for section in Config.model_fields:
        assert f"[{section}]" in text


def test_check_config_cli_exit_codes(tmp_path):
    good = write(tmp_path, "[show]\nlayout = \"full\"\n")
    r = subprocess.run([sys.executable, "-m", "firmware.cli", "check-config", str(good)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and 'layout = "full"' in r.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[show]\nlayuot = \"full\"\n")
    r = subprocess.run([sys.executable, "-m", "firmware.cli", "check-config", str(bad)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "did you mean 'layout'" in r.stderr
