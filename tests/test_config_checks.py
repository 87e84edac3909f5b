"""`check-config` refuses what `serve` refuses and warns about what would silently not work.

Each case is a variant of the shipped config/escalator.yaml. Refusals are checked through
both commands (the real click entry points; `serve` refuses before it opens a database or
a port), and the error lines must be the same: both run escalator.config.checks.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from escalator.cli.main import main
from tests.support.helpers import SHIPPED_CONFIG

SID = "AC" + "0123456789abcdef" * 2
TOKENS = {"ESCALATOR_WEBHOOK_TOKEN": "hook-token", "ESCALATOR_API_TOKEN": "api-token"}


def _twilio(**extra: Any) -> dict[str, Any]:
    return {
        "account_sid": SID,
        "auth_token": {"env": "TWILIO_AUTH_TOKEN"},
        "from_number": "+15550109999",
        **extra,
    }


def _write(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    data: dict[str, Any] = yaml.safe_load(SHIPPED_CONFIG.read_text())
    change(data)
    path = tmp_path / "escalator.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _check(path: Path) -> Result:
    return CliRunner().invoke(main, ["check-config", str(path)])


def _serve(path: Path, tmp_path: Path, host: str = "127.0.0.1") -> Result:
    db = f"sqlite:///{tmp_path / 'serve.db'}"
    args = ["--database-url", db, "serve", "--config", str(path), "--host", host, "--port", "1"]
    return CliRunner().invoke(main, args)


def _errors(output: str, path: Path) -> list[str]:
    """`FILE: PATH: REASON` lines (not warnings) in a command's output."""
    return [
        line
        for line in output.splitlines()
        if line.startswith(f"{path}: ") and ": warning: " not in line and ": ok (" not in line
    ]


def _set(*keys: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        node = data
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value

    return change


REFUSED: dict[str, tuple[Callable[[dict[str, Any]], None], dict[str, str], list[str]]] = {
    # name: (change to the shipped config, environment, expected "PATH...: REASON" parts)
    "unknown stakeholder role": (
        _set("incidents", "stakeholders", value=[{"role": "product_manager"}]),
        {},
        ["incidents.stakeholders[0].role (line ", "unknown role 'product_manager'"],
    ),
    "unknown multiple-critical role": (
        _set("incidents", "multiple_critical", value={"targets": [{"role": "eng_lead"}]}),
        {},
        ["incidents.multiple_critical.targets[0].role (line ", "unknown role 'eng_lead'"],
    ),
    "voice without public_url": (
        _set("channels", "twilio", value=_twilio()),
        {"TWILIO_AUTH_TOKEN": "twilio-token"},
        ["channels.twilio.voice: needs server.public_url"],
    ),
    "unset Twilio auth token": (
        _set("channels", "twilio", value=_twilio(voice=False)),
        {},
        ["channels.twilio.auth_token: $TWILIO_AUTH_TOKEN has no value"],
    ),
    "unset chat webhook": (
        _set("channels", "chat", value={"webhooks": {"incidents": {"env": "HOOK_INCIDENTS"}}}),
        {},
        ["channels.chat.webhooks.incidents: $HOOK_INCIDENTS has no value"],
    ),
    "unset generic webhook file": (
        _set("channels", "webhook", value={"endpoints": {"status": {"file": "/nonexistent/x"}}}),
        {},
        ["channels.webhook.endpoints.status: /nonexistent/x does not exist"],
    ),
    # A secret file that exists but cannot be read (here a directory; root reads any
    # mode bits) is named with the reason, never a traceback.
    "unreadable generic webhook file": (
        _set("channels", "webhook", value={"endpoints": {"status": {"file": "/tmp"}}}),
        {},
        ["channels.webhook.endpoints.status: /tmp cannot be read (Is a directory)"],
    ),
    "email user without password": (
        _set(
            "channels",
            "email",
            value={
                "host": "smtp.example",
                "username": "escalator",
                "password": {"env": "SMTP_PASSWORD"},
                "from_address": "escalator@credlink.example",
            },
        ),
        {},
        ["channels.email.password: $SMTP_PASSWORD has no value"],
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_check_config_refuses_what_serve_refuses(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    change, env, expected = REFUSED[case]
    for name in ("TWILIO_AUTH_TOKEN", "HOOK_INCIDENTS", "SMTP_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {**TOKENS, **env}.items():
        monkeypatch.setenv(name, value)
    path = _write(tmp_path, change)
    checked = _check(path)
    assert checked.exit_code == 1, checked.output
    assert ": ok (" not in checked.output
    (error,) = _errors(checked.output, path)
    assert error.startswith(f"{path}: ") and all(part in error for part in expected), error
    served = _serve(path, tmp_path)
    assert served.exit_code == 1, served.output
    assert _errors(served.output, path) == [error]  # the same line, word for word
    assert not (tmp_path / "serve.db").exists()  # refused before touching the database


def test_fixing_the_environment_makes_both_accept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in TOKENS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)

    def change(data: dict[str, Any]) -> None:
        data["server"]["public_url"] = "https://escalator.credlink.example"
        data["channels"] = {"twilio": _twilio()}

    path = _write(tmp_path, change)
    assert _check(path).exit_code == 1
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "twilio-token")
    checked = _check(path)
    assert checked.exit_code == 0, checked.output
    assert f"{path}: ok (" in checked.output and "warning" not in checked.output


def test_sms_without_public_url_warns_that_replies_get_403(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {**TOKENS, "TWILIO_AUTH_TOKEN": "twilio-token"}.items():
        monkeypatch.setenv(name, value)
    path = _write(tmp_path, _set("channels", "twilio", value=_twilio(voice=False)))
    checked = _check(path)
    assert checked.exit_code == 0, checked.output
    (warning,) = [line for line in checked.output.splitlines() if ": warning: " in line]
    assert warning.startswith(f"{path}: warning: server.public_url: is not set")
    assert "refused with 403" in warning


def test_schema_and_reference_errors_in_one_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in TOKENS.items():
        monkeypatch.setenv(name, value)

    def change(data: dict[str, Any]) -> None:
        data["incidents"]["stakeholders"] = [{"role": "nobody_here"}]
        data["incidents"]["status_update_every"] = "every 15 minutes"
        data["teams"][0]["members"].append("mallory")

    path = _write(tmp_path, change)
    checked = _check(path)
    assert checked.exit_code == 1
    errors = _errors(checked.output, path)
    assert len(errors) == 3, errors
    assert any("incidents.status_update_every (line " in e for e in errors)
    assert any("teams[0].members[2] (line " in e and "'mallory'" in e for e in errors)
    assert any("incidents.stakeholders[0].role (line " in e for e in errors)


def test_malformed_section_does_not_flood_unknown_references(tmp_path: Path) -> None:
    # `people` is not a list: one schema error, not "unknown person" for every member.
    path = _write(tmp_path, _set("people", value={"alice": "+15550100001"}))
    errors = _errors(_check(path).output, path)
    assert errors and all("unknown person" not in e for e in errors), errors
    assert any(e.startswith(f"{path}: people (line ") for e in errors)


def test_missing_tokens_warn_in_check_config_and_refuse_serve_off_loopback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in TOKENS:
        monkeypatch.delenv(name, raising=False)
    checked = _check(SHIPPED_CONFIG)
    assert checked.exit_code == 0
    warned = [line for line in checked.output.splitlines() if ": warning: server." in line]
    assert [w.split(": warning: ")[1].split(":")[0] for w in warned] == [
        "server.webhook_token",
        "server.api_token",
    ]
    served = _serve(SHIPPED_CONFIG, tmp_path, host="0.0.0.0")
    assert served.exit_code == 1
    refused = _errors(served.output, SHIPPED_CONFIG)
    assert len(refused) == 2 and all("refusing to serve unauthenticated" in r for r in refused)


def test_default_multiple_critical_role_missing_warns(tmp_path: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        del data["roles"]["engineering_lead"]
        data["incidents"] = {"severities": ["critical"]}  # default targets: engineering_lead
        for policy in data["policies"].values():
            for step in policy["steps"]:
                step["targets"] = [t for t in step["targets"] if t != {"role": "engineering_lead"}]
        data["policies"]["critical"]["steps"] = [
            s for s in data["policies"]["critical"]["steps"] if s["targets"]
        ]

    path = _write(tmp_path, change)
    checked = _check(path)
    assert checked.exit_code == 0, checked.output
    assert (
        f"{path}: warning: incidents.multiple_critical.targets: defaults to role "
        "'engineering_lead', which is not defined" in checked.output
    )

    # Turning the trigger off (or incidents entirely) silences it.
    def turned_off(data: dict[str, Any]) -> None:
        change(data)
        data["incidents"] = {"enabled": False, "multiple_critical": {"enabled": False}}

    off = _check(_write(tmp_path, turned_off))
    assert off.exit_code == 0 and "multiple_critical.targets" not in off.output


def test_channel_target_without_a_webhook_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_INCIDENTS", "http://127.0.0.1:9/hook")
    path = _write(
        tmp_path,
        _set("channels", "chat", value={"webhooks": {"incidents": {"env": "HOOK_INCIDENTS"}}}),
    )
    checked = _check(path)
    assert checked.exit_code == 0, checked.output
    warned = {
        line.split(": warning: ")[1].split(":")[0]
        for line in checked.output.splitlines()
        if "only reach the console" in line
    }
    # #alerts (warning policy) and #info (info policy) have no webhook; #incidents has one.
    assert warned == {
        "policies.warning.steps[0].targets[1].channel",
        "policies.info.steps[0].targets[0].channel",
    }
