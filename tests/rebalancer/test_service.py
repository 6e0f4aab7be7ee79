"""``rebalancer service``: a systemd unit that runs watch with the config, restarts on failure,
stops on SIGTERM and holds no secret (validated by ``systemd-analyze verify`` where it exists);
launchd and cron forms where systemd is absent; status and uninstall."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from rebalancer.cli import main
from tests.rebalancer.test_execution import write_config


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DEMO_PASS", "demo-SECRET")
    monkeypatch.setenv("ONEINCH_API_KEY", "key-SECRET")
    return write_config(tmp_path)


def service(
    capsys: pytest.CaptureFixture[str], cfg: Path, *argv: str
) -> tuple[int, dict[str, object]]:
    capsys.readouterr()
    code = main(
        ["service", *argv, "-c", str(cfg), "--unit-dir", str(cfg.parent / "units"), "--json"]
    )
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else {"error": err}


def test_install_writes_a_valid_unit_without_secrets(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env_file = cfg.parent / "rebalancer.env"
    code, doc = service(capsys, cfg, "install", "--user", "--execute", "--env-file", str(env_file))
    assert code == 0 and doc["format"] == "systemd"
    assert doc["env"] == ["ONEINCH_API_KEY", "DEMO_PASS"]
    unit = Path(str(doc["unit"]))
    text = unit.read_text()
    assert "SECRET" not in text
    service_lines = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")
    )
    assert service_lines["Restart"] == "on-failure" and service_lines["KillSignal"] == "SIGTERM"
    assert service_lines["EnvironmentFile"] == str(env_file)
    assert f"watch -c {cfg} --interval 15m --execute --yes" in service_lines["ExecStart"]
    assert service_lines["WantedBy"] == "default.target"
    analyze = shutil.which("systemd-analyze")
    if analyze is not None:
        done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
        assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    code, status = service(capsys, cfg, "status", "--user")
    assert code == 0 and status["installed"] is True
    code, _ = service(capsys, cfg, "uninstall", "--user")
    assert code == 0 and not unit.exists()
    code, status = service(capsys, cfg, "status", "--user")
    assert status["installed"] is False


def test_refuses_a_unit_it_did_not_write(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    units = cfg.parent / "units"
    units.mkdir()
    (units / "rebalancer-watch.service").write_text("[Service]\nExecStart=/bin/true\n")
    code, doc = service(capsys, cfg, "install", "--user")
    assert code == 2 and "not written by rebalancer" in str(doc["error"])


def test_bad_config_installs_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "rebalancer.toml"
    bad.write_text("nonsense = 1\n")
    code, _ = service(capsys, bad, "install", "--user")
    assert code == 2 and not (tmp_path / "units").exists()


@pytest.mark.parametrize("fmt", ["launchd", "cron"])
def test_launchd_and_cron_are_printed(
    cfg: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    code, doc = service(capsys, cfg, "install", "--user", "--format", fmt)
    assert code == 0 and doc["format"] == fmt
    text = str(doc["text"])
    assert "watch" in text and str(cfg) in text and "SECRET" not in text
    assert str(doc["env_file"]) in text
    assert not (cfg.parent / "units").exists()
