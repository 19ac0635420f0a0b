from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge import config
from edge.cli import main

GOOD = """
[device]
id = "door-01"
site = "xixiang-center"
timezone = "Asia/Shanghai"

[mqtt]
host = "broker.local"
password = "s3cret"
tls = false
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "agent.toml"
    p.write_text(text)
    return p


def test_good_config_loads_with_defaults(tmp_path):
    cfg = config.load(write(tmp_path, GOOD))
    assert cfg.bins.minutes == 15 and cfg.mqtt.port == 8883 and cfg.device.id == "door-01"


def test_broken_toml_names_the_line(tmp_path):
    with pytest.raises(config.ConfigError, match=r"not valid TOML.*line 3"):
        config.load(write(tmp_path, "[device]\nid = 'x'\nsite = \n"))


def test_unknown_key_gets_did_you_mean(tmp_path):
    with pytest.raises(config.ConfigError, match=r"bins\.minuts: unknown key; did you mean 'bins\.minutes'\?"):
        config.load(write(tmp_path, GOOD + "\n[bins]\nminuts = 5\n"))


def test_unknown_section_lists_known(tmp_path):
    with pytest.raises(config.ConfigError, match=r"mqqt: unknown key; did you mean 'mqtt'"):
        config.load(write(tmp_path, GOOD + "\n[mqqt]\nhost = 'x'\n"))


def test_wrong_type_names_key_value_and_fix(tmp_path):
    with pytest.raises(config.ConfigError) as err:
        config.load(write(tmp_path, GOOD + "\n[bins]\nminutes = 7\n"))
    assert "bins.minutes = 7" in str(err.value) and "1, 5 or 15" in str(err.value)


def test_bad_timezone_suggests(tmp_path):
    with pytest.raises(config.ConfigError, match=r"did you mean 'Asia/Shanghai'"):
        config.load(write(tmp_path, GOOD.replace("Asia/Shanghai", "Asia/Shangai")))


def test_unreadable_tls_file(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    os.chmod(ca, 0)
    text = GOOD + f'ca_file = "{ca}"\n'
    if os.access(ca, os.R_OK):  # root reads anything: use a missing file instead
        text = GOOD + f'ca_file = "{tmp_path / "missing.pem"}"\n'
    with pytest.raises(config.ConfigError, match=r"ca_file = .* cannot be read"):
        config.load(write(tmp_path, text))


def test_missing_required_key(tmp_path):
    with pytest.raises(config.ConfigError, match=r"device\.site: required, but missing"):
        config.load(write(tmp_path, "[device]\nid = 'a'\n"))


def test_cli_check_and_show_masks_secrets(tmp_path, capsys):
    p = write(tmp_path, GOOD)
    assert main(["--config", str(p), "config", "check"]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["--config", str(p), "config", "show"]) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out and "********" in out and 'minutes = 15' in out


def test_cli_check_fails_with_exit_2(tmp_path, capsys):
    p = write(tmp_path, GOOD + "\n[bins]\nminuts = 5\n")
    assert main(["--config", str(p), "config", "check"]) == 2
    assert "did you mean" in capsys.readouterr().err


def test_missing_file_is_clear(tmp_path, capsys):
    assert main(["--config", str(tmp_path / "nope.toml"), "config", "check"]) == 2
    assert "no such file" in capsys.readouterr().err
