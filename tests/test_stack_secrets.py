"""The components of the local stack see the configuration in ``.env``, and of the secrets only
those they read."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from pydantic import AliasChoices, SecretStr
from pydantic_settings import BaseSettings

from tbmon.alert_bridge.settings import BridgeSettings
from tbmon.health.settings import HealthSettings
from tbmon.ports import isolated_settings
from tbmon.settings import ENV_FILE
from tbmon.stack import render
from tbmon.stack.components import COMPONENTS, SECRET_VARIABLES
from tbmon.stack.operations import OperationsSettings
from tbmon.stack.render import EmailSettings
from tbmon.stack.supervisor import Supervisor


def _secret_variables(settings: type[BaseSettings]) -> set[str]:
    """The environment variables that fill ``settings``' SecretStr fields."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    found = set()
    for name, field in settings.model_fields.items():
        if SecretStr not in typing.get_args(field.annotation) and field.annotation is not SecretStr:
            continue
        alias = field.validation_alias
        if isinstance(alias, str):
            found.add(alias)
        elif isinstance(alias, AliasChoices):
            found.update(choice for choice in alias.choices if isinstance(choice, str))
        else:
            found.add(f"{prefix}{name}".upper())
    return found


@pytest.mark.parametrize(
    "settings", [BridgeSettings, HealthSettings, EmailSettings, OperationsSettings]
)
def test_every_secret_setting_is_a_withheld_variable(settings: type[BaseSettings]) -> None:
    secrets = _secret_variables(settings)
    assert secrets
    assert secrets <= SECRET_VARIABLES


def test_each_component_gets_dotenv_and_only_its_own_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        "HEALTH_TOKEN=from-dotenv-0123456789abcdef\nPROCESSORS_PLUGINS=redaction\n"
    )
    monkeypatch.setenv("DATABASE_URL", "postgresql://bot:pw@127.0.0.1/trades")
    monkeypatch.setenv("SMTP_PASSWORD", "smtp-secret")
    monkeypatch.setenv("PROCESSORS_PLUGINS", "redaction,execution_quality")  # the shell wins
    supervisor = Supervisor(isolated_settings(tmp_path))
    given = {c.name: supervisor.environment(c) for c in COMPONENTS}

    assert given["health"]["HEALTH_TOKEN"] == "from-dotenv-0123456789abcdef"
    assert given["health"]["DATABASE_URL"] == "postgresql://bot:pw@127.0.0.1/trades"
    assert given["processors"]["PROCESSORS_PLUGINS"] == "redaction,execution_quality"
    for name, env in given.items():
        assert "SMTP_PASSWORD" not in env, name  # Alertmanager reads it from a rendered file
        if name != "health":
            assert "DATABASE_URL" not in env, name
            assert "HEALTH_TOKEN" not in env, name


def test_the_health_service_gets_the_bridge_token_the_stack_generated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALERT_BRIDGE_TOKEN", raising=False)
    monkeypatch.delenv("HEALTH_ALERT_BRIDGE_TOKEN", raising=False)
    supervisor = Supervisor(isolated_settings(tmp_path))
    bridge = next(c for c in COMPONENTS if c.name == "alert-bridge")
    assert bridge.prepare is not None
    bridge.prepare(supervisor.layout(bridge))  # generates the token, as `stack up` does
    token = render.bridge_token_file(supervisor.settings).read_text()
    given = {c.name: supervisor.environment(c) for c in COMPONENTS}
    assert given["health"]["HEALTH_ALERT_BRIDGE_TOKEN"] == token
    assert all("HEALTH_ALERT_BRIDGE_TOKEN" not in env for n, env in given.items() if n != "health")


def test_a_bridge_token_the_user_gave_the_health_service_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALERT_BRIDGE_TOKEN", raising=False)
    monkeypatch.setenv("HEALTH_ALERT_BRIDGE_TOKEN", "the-users-own-token-0123456789")
    supervisor = Supervisor(isolated_settings(tmp_path))
    bridge = next(c for c in COMPONENTS if c.name == "alert-bridge")
    health = next(c for c in COMPONENTS if c.name == "health")
    assert bridge.prepare is not None
    bridge.prepare(supervisor.layout(bridge))
    given = supervisor.environment(health)["HEALTH_ALERT_BRIDGE_TOKEN"]
    assert given == "the-users-own-token-0123456789"


def test_the_env_file_named_by_tbmon_env_file_reaches_the_components_filtered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TBMON_ENV_FILE is read by the supervisor and not handed on: a component reading the file
    itself would see every secret in it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("HEALTH_TOKEN=from-the-cwd-env-0123456789\n")  # not read
    named = tmp_path / "conf" / "tbmon.env"
    named.parent.mkdir()
    named.write_text("HEALTH_TOKEN=from-the-named-file-0123456789\nSMTP_PASSWORD=smtp-secret\n")
    monkeypatch.setenv(ENV_FILE, str(named))
    monkeypatch.delenv("HEALTH_TOKEN", raising=False)
    supervisor = Supervisor(isolated_settings(tmp_path))
    given = {c.name: supervisor.environment(c) for c in COMPONENTS}
    assert given["health"]["HEALTH_TOKEN"] == "from-the-named-file-0123456789"
    for name, env in given.items():
        assert ENV_FILE not in env, name
        assert "SMTP_PASSWORD" not in env, name
