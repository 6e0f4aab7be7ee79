"""``rebalancer service install|status|uninstall``: keep ``watch`` running as a service.

``install`` writes a systemd unit (``--user``: the user's own manager) that runs ``watch`` with
the config, restarts it on failure (not on a config error, exit 2, which a restart cannot fix)
and stops it with SIGTERM (watch finishes and records its current step). Where systemd is absent
it prints a launchd plist (macOS) or a cron line instead. No secret ever goes into the unit: the
environment (node URLs, API keys, passphrases) comes from an EnvironmentFile the user writes,
``VAR=value`` lines, readable by that user only.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from rebalancer.commands import config_arg
from rebalancer.core.errors import ConfigError
from rebalancer.output import emit_json

FORMATS = ("systemd", "launchd", "cron")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["install", "status", "uninstall"], help="what to do")
    config_arg(p)
    p.add_argument("--user", action="store_true", help="a user service (no root needed)")
    p.add_argument("--name", default="rebalancer-watch", help="the unit's name")
    p.add_argument("--interval", default="15m", metavar="EVERY", help="watch --interval")
    p.add_argument(
        "--execute",
        action="store_true",
        help="the service signs and sends (watch --execute --yes); default: dry runs",
    )
    p.add_argument(
        "--env-file",
        metavar="FILE",
        help="the EnvironmentFile with the secrets (default: ~/.config/rebalancer/"
        "rebalancer.env with --user, else /etc/rebalancer/rebalancer.env)",
    )
    p.add_argument(
        "--unit-dir",
        metavar="DIR",
        help="where the unit goes (default: ~/.config/systemd/user or /etc/systemd/system)",
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        help="systemd (default where systemd runs), launchd (macOS) or cron (printed)",
    )
    p.add_argument(
        "--enable",
        action="store_true",
        help="install: also systemctl daemon-reload and enable --now",
    )


def has_systemd() -> bool:
    return shutil.which("systemctl") is not None and Path("/run/systemd/system").is_dir()


def _format(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    if has_systemd() or args.unit_dir:
        return "systemd"
    return "launchd" if sys.platform == "darwin" else "cron"


def _program() -> list[str]:
    """How to start this very rebalancer: its console script, else this Python with -m."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is not None and script.name == "rebalancer" and script.exists():
        return [str(script.resolve())]
    found = shutil.which("rebalancer")
    if found:
        return [str(Path(found).resolve())]
    return [sys.executable, "-m", "rebalancer.cli"]


def _env_file(args: argparse.Namespace) -> Path:
    if args.env_file:
        return Path(args.env_file).expanduser().resolve()
    if args.user:
        return Path.home() / ".config" / "rebalancer" / "rebalancer.env"
    return Path("/etc/rebalancer/rebalancer.env")


def _unit_path(args: argparse.Namespace) -> Path:
    if args.unit_dir:
        base = Path(args.unit_dir).expanduser()
    elif args.user:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "systemd/user"
    else:
        base = Path("/etc/systemd/system")
    return base / f"{args.name}.service"


def command(args: argparse.Namespace, config: Path) -> list[str]:
    argv = [*_program(), "watch", "-c", str(config), "--interval", args.interval]
    return argv + (["--execute", "--yes"] if args.execute else [])


def needed_env(config: Any) -> list[str]:
    """The environment variables the config names (what the EnvironmentFile must hold)."""
    names: list[str] = []
    for c in config.chains.values():
        for spec in (c.rpc, getattr(c, "send_rpc", None)):
            if isinstance(spec, str) and spec.startswith("env:"):
                names.append(spec[4:])
    names += [a.api_key_env for a in config.aggregators.values() if a.api_key_env]
    names += [
        w.signer.passphrase_env for w in config.wallets if w.signer and w.signer.passphrase_env
    ]
    names += [v for k, v in config.notify.model_dump().items() if k.endswith("_env") and v]
    return list(dict.fromkeys(names))


def systemd_unit(args: argparse.Namespace, config: Path, env_file: Path) -> str:
    exec_start = " ".join(shlex.quote(a) for a in command(args, config))
    mode = "executes trades" if args.execute else "dry runs only"
    return "\n".join(
        [
            "# Written by `rebalancer service install`. No secret belongs here: node URLs, API",
            f"# keys and passphrases go in {env_file} (VAR=value lines, chmod 600).",
            "[Unit]",
            f"Description=rebalancer watch ({mode}) for {config}",
            "Wants=network-online.target",
            "After=network-online.target",
            "",
            "[Service]",
            "Type=simple",
            f"ExecStart={exec_start}",
            f"WorkingDirectory={config.parent}",
            f"EnvironmentFile={env_file}",
            "Restart=on-failure",
            "RestartSec=60",
            "# a config error (exit 2) is not fixed by restarting",
            "RestartPreventExitStatus=2",
            "# watch stops between steps on SIGTERM, recording the trade in progress first",
            "KillSignal=SIGTERM",
            "KillMode=mixed",
            "TimeoutStopSec=300",
            "NoNewPrivileges=yes",
            "PrivateTmp=yes",
            "",
            "[Install]",
            f"WantedBy={'default.target' if args.user else 'multi-user.target'}",
            "",
        ]
    )


def launchd_plist(args: argparse.Namespace, config: Path, env_file: Path) -> str:
    argv = "\n".join(f"    <string>{a}</string>" for a in command(args, config))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<!-- ~/Library/LaunchAgents/org.rebalancer.{args.name}.plist; load with
     launchctl load -w that file. launchd has no EnvironmentFile: the secrets come from
     {env_file}, sourced by the wrapping shell below, never written here. -->
<plist version="1.0">
<dict>
  <key>Label</key><string>org.rebalancer.{args.name}</string>
  <key>ProgramArguments</key>
  <array>
    <string>/bin/sh</string>
    <string>-c</string>
    <string>set -a; . {shlex.quote(str(env_file))}; set +a; exec "$0" "$@"</string>
{argv}
  </array>
  <key>WorkingDirectory</key><string>{config.parent}</string>
  <key>KeepAlive</key><dict><key>SuccessfulExit</key><false/></dict>
  <key>RunAtLoad</key><true/>
</dict>
</plist>
"""


def cron_line(args: argparse.Namespace, config: Path, env_file: Path) -> str:
    """One check every 15 minutes (cron has no restart: each line is one ``watch --count 1``)."""
    argv = [*command(args, config), "--count", "1"]
    run = " ".join(shlex.quote(a) for a in argv)
    return (
        f"*/15 * * * * set -a; . {shlex.quote(str(env_file))}; set +a; "
        f"cd {shlex.quote(str(config.parent))} && {run} >> {shlex.quote(str(config.parent))}"
        "/rebalancer-watch.log 2>&1"
    )


def _systemctl(args: argparse.Namespace, *words: str) -> subprocess.CompletedProcess[str]:
    argv = ["systemctl", *(["--user"] if args.user else []), *words]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def run(args: argparse.Namespace) -> int:
    from rebalancer.config import load_config

    config_path = Path(args.config).expanduser().resolve()
    fmt = _format(args)
    unit = _unit_path(args)
    if args.action == "status":
        return _status(args, unit, fmt)
    if args.action == "uninstall":
        return _uninstall(args, unit)
    config, _ = load_config(config_path)  # a service that cannot start is no service
    env_file = _env_file(args)
    variables = needed_env(config)
    if fmt != "systemd":
        text = (launchd_plist if fmt == "launchd" else cron_line)(args, config_path, env_file)
        if args.json:
            emit_json({"format": fmt, "text": text, "env_file": str(env_file), "env": variables})
        else:
            print(text)
            _env_advice(env_file, variables)
        return 0
    if unit.exists() and "rebalancer service install" not in unit.read_text(encoding="utf-8"):
        raise ConfigError(f"{unit} exists and was not written by rebalancer; not touching it")
    try:
        unit.parent.mkdir(parents=True, exist_ok=True)
        unit.write_text(systemd_unit(args, config_path, env_file), encoding="utf-8")
    except OSError as exc:
        hint = "" if args.user else " (system units need root; or use --user)"
        raise ConfigError(f"{unit}: cannot write: {exc.strerror}{hint}") from None
    enabled = False
    if args.enable:
        for words in (("daemon-reload",), ("enable", "--now", unit.name)):
            done = _systemctl(args, *words)
            if done.returncode != 0:
                raise ConfigError(f"systemctl {' '.join(words)}: {done.stderr.strip()[:200]}")
        enabled = True
    if args.json:
        emit_json(
            {
                "format": fmt,
                "unit": str(unit),
                "env_file": str(env_file),
                "env": variables,
                "enabled": enabled,
            }
        )
        return 0
    print(f"wrote {unit}")
    _env_advice(env_file, variables)
    if not enabled:
        user = " --user" if args.user else ""
        print(f"then: systemctl{user} daemon-reload && systemctl{user} enable --now {unit.name}")
    return 0


def _env_advice(env_file: Path, variables: list[str]) -> None:
    print(f"\nthe service reads its secrets from {env_file} (write it yourself, chmod 600):")
    for var in variables:
        print(f"  {var}=...")


def _status(args: argparse.Namespace, unit: Path, fmt: str) -> int:
    installed = unit.exists()
    active = None
    if installed and has_systemd():
        active = _systemctl(args, "is-active", unit.name).stdout.strip() or None
    if args.json:
        emit_json({"unit": str(unit), "installed": installed, "active": active, "format": fmt})
    else:
        state = f"installed at {unit}" if installed else f"not installed ({unit} absent)"
        print(f"{args.name}: {state}" + (f", {active}" if active else ""))
    return 0


def _uninstall(args: argparse.Namespace, unit: Path) -> int:
    if not unit.exists():
        _say(args, f"{args.name}: not installed ({unit} absent)", unit, removed=False)
        return 0
    if "rebalancer service install" not in unit.read_text(encoding="utf-8"):
        raise ConfigError(f"{unit} was not written by rebalancer; not removing it")
    if has_systemd():
        _systemctl(args, "disable", "--now", unit.name)
    unit.unlink()
    if has_systemd():
        _systemctl(args, "daemon-reload")
    _say(args, f"removed {unit}", unit, removed=True)
    return 0


def _say(args: argparse.Namespace, line: str, unit: Path, *, removed: bool) -> None:
    if args.json:
        emit_json({"unit": str(unit), "removed": removed})
    else:
        print(line)
