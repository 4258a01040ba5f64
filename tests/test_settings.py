"""tbmon's one settings dialect (tbmon.settings): one base, one ``.env`` rule, one reader, one
error naming the variables (never their values), one way to find a stack port."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import Field

from tbmon.alert_bridge.settings import BridgeSettings
from tbmon.health.settings import HealthSettings
from tbmon.instrumentation.settings import InstrumentationSettings
from tbmon.processors.execution import ExecutionSettings
from tbmon.processors.redaction import RedactionSettings
from tbmon.processors.settings import ProcessorsSettings
from tbmon.processors.trading_analytics import AnalyticsSettings
from tbmon.settings import (
    ENV_FILE,
    InvalidSettingsError,
    StackSettings,
    TbmonSettings,
    get_stack_settings,
    read_settings,
    read_settings_or_defaults,
)
from tbmon.stack.operations import OperationsSettings
from tbmon.stack.render import EmailSettings
from tbmon.stack.scaled import ScaledSettings

CHECKOUT = Path(__file__).resolve().parent.parent
#: Every distribution's source root (the Makefile's SOURCES).
SOURCE_ROOTS = sorted(CHECKOUT.glob("*/src"))
CORE_SETTINGS = CHECKOUT / "core/src/tbmon/settings.py"
SUPERVISOR = CHECKOUT / "stack/src/tbmon/stack/supervisor.py"

#: One bad value per component's settings: (class, variable, value, words of the message).
BAD_VALUES = [
    (StackSettings, "TBMON_HEALTH_PORT", "ninety", "valid integer"),
    (StackSettings, "TBMON_PROMETHEUS_PORT", "70000", "not a TCP port"),
    (ScaledSettings, "TBMON_SCALED_GATEWAY_REPLICAS", "many", "valid integer"),
    (InstrumentationSettings, "TBMON_ANALYTICS_WINDOW", "1", "greater than or equal to 2"),
    (InstrumentationSettings, "EXCHANGE_API_URL", "not a url", "URL"),
    (ProcessorsSettings, "PROCESSORS_FORWARD_TIMEOUT_SECONDS", "-1", "greater than 0"),
    (ProcessorsSettings, "PROCESSORS_PLUGIN_BUDGETS", "{redaction: 2}", "cannot be decoded"),
    (RedactionSettings, "PROCESSORS_REDACTION_EXTRA_PATTERNS", "[ACME-", "cannot be decoded"),
    (ExecutionSettings, "PROCESSORS_EXECUTION_SPAN_NAMES", "create_(", "not a regular expr"),
    (AnalyticsSettings, "PROCESSORS_ANALYTICS_WINDOW_PERIODS", "1", "greater than or equal"),
    (HealthSettings, "HEALTH_INTERVAL", "0", "greater than 0"),
    (HealthSettings, "EXCHANGE_API_URL", "ftp://exchange", "http:// or https://"),
    (BridgeSettings, "ALERT_BRIDGE_DEDUP_WINDOW", "soon", "valid number"),
    (BridgeSettings, "TELEGRAM_CRITICAL_CHAT_ID", "1001234567890", "leading '-'"),
    (OperationsSettings, "TBMON_OPERATIONS_TIMEOUT", "0", "greater than 0"),
    (EmailSettings, "SMTP_HOST", "smtp.example.com", "must be host:port"),
]


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """A working directory with no ``.env``, TBMON_ENV_FILE unset, the stack's settings unread."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENV_FILE, raising=False)
    get_stack_settings.cache_clear()
    yield monkeypatch
    get_stack_settings.cache_clear()


@pytest.mark.parametrize(("cls", "variable", "value", "words"), BAD_VALUES)
@pytest.mark.parametrize("source", ["environment", ".env", ENV_FILE])
def test_a_bad_value_names_its_variable_through_the_one_reader(
    environment: pytest.MonkeyPatch,
    tmp_path: Path,
    source: str,
    cls: type[TbmonSettings],
    variable: str,
    value: str,
    words: str,
) -> None:
    environment.delenv(variable, raising=False)
    if source == "environment":
        environment.setenv(variable, value)
    elif source == ".env":
        (tmp_path / ".env").write_text(f"{variable}='{value}'\n")
    else:
        elsewhere = tmp_path / "elsewhere" / "tbmon.env"
        elsewhere.parent.mkdir()
        elsewhere.write_text(f"{variable}='{value}'\n")
        (tmp_path / ".env").write_text(f"{variable}=\n")  # not read: TBMON_ENV_FILE names another
        environment.setenv(ENV_FILE, str(elsewhere))
    with pytest.raises(InvalidSettingsError) as raised:
        read_settings(cls)
    message = str(raised.value)
    assert variable in message
    assert words in message
    assert raised.value.__cause__ is None  # the original error's text holds the value
    assert raised.value.__suppress_context__


@pytest.mark.parametrize(
    ("cls", "variable", "secret"),
    [
        (HealthSettings, "DATABASE_URL", "mysql://bot:hunter2-do-not-print@db/trades"),
        (HealthSettings, "HEALTH_TOKEN", "hunter2-short"),
        (BridgeSettings, "TELEGRAM_BOT_TOKEN", "hunter2-not-a-bot-token"),
        (BridgeSettings, "ALERT_BRIDGE_WEBHOOK_SECRET", "hunter2 with spaces"),
    ],
)
def test_a_bad_secret_is_named_never_shown(
    environment: pytest.MonkeyPatch, cls: type[TbmonSettings], variable: str, secret: str
) -> None:
    environment.setenv(variable, secret)
    for name in ("TELEGRAM_CRITICAL_CHAT_ID", "ALERT_BRIDGE_TOKEN"):
        environment.setenv(name, "-1001" if "CHAT" in name else "a-bridge-token-0123456789")
    if variable != "TELEGRAM_BOT_TOKEN":
        environment.setenv("TELEGRAM_BOT_TOKEN", "123456:" + "A" * 30)
    with pytest.raises(InvalidSettingsError) as raised:
        read_settings(cls)
    assert variable in str(raised.value)
    assert "hunter2" not in str(raised.value)
    assert "hunter2" not in repr(raised.value.problems)
    fields = [name for name, info in cls.model_fields.items() if "Secret" in str(info.annotation)]
    assert fields


def test_the_environment_outranks_the_env_file_and_init_values_outrank_both(
    environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("PROCESSORS_PLUGINS=redaction\nPROCESSORS_MAX_MESSAGE_BYTES=7\n")
    environment.setenv("PROCESSORS_PLUGINS", "execution_quality")
    settings = read_settings(ProcessorsSettings)
    assert settings.plugins == ["execution_quality"]
    assert settings.max_message_bytes == 7  # from the working directory's .env
    assert read_settings(ProcessorsSettings, plugins=["trading_analytics"]).plugins == [
        "trading_analytics"
    ]
    environment.setenv(ENV_FILE, str(tmp_path / "missing.env"))  # a missing file is no error
    assert read_settings(ProcessorsSettings).max_message_bytes == 64 * 2**20


def test_every_settings_class_is_a_tbmon_settings_and_names_no_env_file() -> None:
    """One dialect: BaseSettings is subclassed in tbmon.settings only, and no class chooses its
    own .env (model_config's env_file) or reads one by hand (dotenv) outside tbmon.settings and
    the supervisor (which hands the same file to the components it starts)."""
    offenders = []
    for path in (p for root in SOURCE_ROOTS for p in root.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        where = path.relative_to(CHECKOUT)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and path != CORE_SETTINGS:
                bases = {ast.unparse(base) for base in node.bases}
                if bases & {"BaseSettings", "pydantic_settings.BaseSettings"}:
                    offenders.append(f"{where}: class {node.name}(BaseSettings)")
            if path == CORE_SETTINGS:
                continue
            if isinstance(node, ast.keyword) and node.arg in ("env_file", "_env_file"):
                offenders.append(f"{where}:{node.value.lineno}: {node.arg}=")
            dotenv = isinstance(node, ast.ImportFrom) and node.module == "dotenv"
            if dotenv and path != SUPERVISOR:
                offenders.append(f"{where}: reads a .env by hand")
            if isinstance(node, ast.ClassDef) and node.name in ("SettingsError",):
                offenders.append(f"{where}: a second SettingsError")
    assert offenders == []


def test_component_ports_are_the_stack_port_fields(environment: pytest.MonkeyPatch) -> None:
    """No component has a port default of its own: each is the stack's field (TBMON_*)."""
    environment.setenv("TBMON_PROCESSORS_PORT", "24319")
    environment.setenv("TBMON_PROCESSORS_HTTP_PORT", "24091")
    environment.setenv("TBMON_PROCESSED_PORT", "24320")
    environment.setenv("TBMON_BRIDGE_PORT", "24090")
    environment.setenv("TBMON_HEALTH_PORT", "24080")
    environment.setenv("TBMON_ALERTMANAGER_PORT", "24093")
    processors = read_settings(ProcessorsSettings)
    assert (processors.port, processors.http_port) == (24319, 24091)
    assert processors.forward_endpoint == "127.0.0.1:24320"
    health = read_settings(HealthSettings)
    assert health.port == 24080
    assert health.alert_bridge_url == "http://127.0.0.1:24090"
    assert health.processors_url == "http://127.0.0.1:24091"
    assert health.alertmanager_url == "http://127.0.0.1:24093"
    environment.setenv("TELEGRAM_BOT_TOKEN", "123456:" + "A" * 30)
    environment.setenv("TELEGRAM_CRITICAL_CHAT_ID", "-1001")
    environment.setenv("ALERT_BRIDGE_TOKEN", "a-bridge-token-0123456789")
    assert read_settings(BridgeSettings).alertmanager_url == "http://127.0.0.1:24093"


def test_a_bad_stack_port_stops_a_component_naming_the_stack_variable(
    environment: pytest.MonkeyPatch,
) -> None:
    environment.setenv("TBMON_PROCESSORS_PORT", "ninety")
    with pytest.raises(InvalidSettingsError, match=r"^TBMON_PROCESSORS_PORT: "):
        read_settings(ProcessorsSettings)


def test_malformed_json_names_the_variable_of_an_aliased_field(
    environment: pytest.MonkeyPatch,
) -> None:
    class WithJson(TbmonSettings):
        limits: dict[str, float] = Field(default_factory=dict, validation_alias="SOME_LIMITS")

    environment.setenv("SOME_LIMITS", '{"a": 1,')
    with pytest.raises(InvalidSettingsError, match=r"^SOME_LIMITS: cannot be decoded as JSON"):
        read_settings(WithJson)


def test_the_lenient_reader_warns_once_and_takes_defaults(
    environment: pytest.MonkeyPatch,
) -> None:
    environment.setenv("TBMON_PROMETHEUS_PORT", "ninety")
    environment.setenv("TBMON_OTLP_GRPC_PORT", "24317")
    warnings: list[str] = []
    stack = read_settings_or_defaults(StackSettings, warnings.append)
    assert (stack.prometheus_port, stack.otlp_grpc_port) == (9090, 24317)  # the rest is kept
    assert len(warnings) == 1
    assert warnings[0].startswith("TBMON_PROMETHEUS_PORT: ")
    # A check across fields that no single default settles: every default, still one warning.
    environment.setenv("TBMON_METRICS_PORT", "24317")
    warnings.clear()
    stack = read_settings_or_defaults(StackSettings, warnings.append)
    assert (stack.otlp_grpc_port, stack.metrics_port) == (4317, 8000)
    assert len(warnings) == 1
    assert "TBMON_METRICS_PORT and TBMON_OTLP_GRPC_PORT are both 24317" in warnings[0]
