"""Settings: command-line options win over environment variables, which win over the
`[flowtrux]` table of hypercorn.toml, which wins over the defaults."""

from __future__ import annotations

import math
import os
import resource
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import httpx
import limits

from flowtrux.engine.limits import MAX_WORKFLOW_NODES
from flowtrux.outbound.networks import AddressPolicy, InvalidAllowList

ENV_PREFIX = "FLOWTRUX_"
LOG_LEVELS = ("debug", "info", "warning", "error")
# File descriptors a process keeps beside its connections: SQLite (database and WAL for each of
# its connections), logs, the listening sockets, trio's wakeup pipe and epoll (about 25 seen).
MAX_DAYS = 36_500
FD_RESERVE = 100
FD_LIMIT_WHEN_UNLIMITED = 2**20  # Linux's default ceiling (fs.nr_open)


class InvalidSetting(ValueError):
    pass


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0 or not math.isfinite(value):  # NaN fails both, infinity the second
        raise InvalidSetting(f"{attribute.name} must be a number greater than 0, got {value}")


def _days(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    _positive(instance, attribute, value)
    if value > MAX_DAYS:
        raise InvalidSetting(f"{attribute.name} must be at most {MAX_DAYS} (a century)")


def _rate(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    try:
        limits.parse(value)
    except ValueError:
        raise InvalidSetting(
            f"{attribute.name} must look like '60/minute' (per second, minute or hour),"
            f" got {value!r}"
        ) from None


def max_connections_allowed() -> int:
    """The most connections the file-descriptor limit leaves room for (the default cap)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = FD_LIMIT_WHEN_UNLIMITED
    return max(1, soft - FD_RESERVE)


def _under_fd_limit(instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    allowed = max_connections_allowed()
    if value > allowed:
        raise InvalidSetting(
            f"{attribute.name} must leave {FD_RESERVE} file descriptors under the process's limit"
            f" (ulimit -n): at most {allowed}, got {value}"
        )


def _allow_cidrs(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    try:
        AddressPolicy.parse(value)
    except InvalidAllowList as exc:
        raise InvalidSetting(f"{attribute.name}: {exc}") from None


def _http_url(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise InvalidSetting(f"{attribute.name} must be an http(s) URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise InvalidSetting(f"{attribute.name} must be an http(s) URL, got {value!r}")


def _log_level(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if value not in LOG_LEVELS:
        raise InvalidSetting(f"{attribute.name} must be one of {', '.join(LOG_LEVELS)}")


@attrs.frozen
class Settings:
    database_url: str = "sqlite:///./flowtrux.db"
    public_origin: str | None = None
    execute_rate: str = attrs.field(default="60/minute", validator=_rate)
    webhook_rate: str = attrs.field(default="60/minute", validator=_rate)
    max_body_bytes: int = attrs.field(default=1_048_576, validator=_positive)
    max_workflow_nodes: int = attrs.field(default=MAX_WORKFLOW_NODES, validator=_positive)
    max_runs_per_workspace: int = attrs.field(default=100, validator=_positive)
    run_timeout_s: float = attrs.field(default=900.0, validator=_positive)
    max_concurrent_nodes: int = attrs.field(default=16, validator=_positive)
    max_output_bytes: int = attrs.field(default=4 * 1024 * 1024, validator=_positive)
    max_run_log_bytes: int = attrs.field(default=64 * 1024 * 1024, validator=_positive)
    keepalive_s: float = attrs.field(default=15.0, validator=_positive)
    lease_s: float = attrs.field(default=20.0, validator=_positive)
    retention_days: float = attrs.field(default=30.0, validator=_days)
    callback_secret: str = ""  # completion callbacks of background runs are off without it
    request_timeout_s: float = attrs.field(default=30.0, validator=_positive)
    max_connections: int = attrs.field(
        factory=max_connections_allowed, validator=[_positive, _under_fd_limit]
    )
    log_level: str = attrs.field(default="info", validator=_log_level)
    http_allow_cidrs: str = attrs.field(default="", validator=_allow_cidrs)
    max_outbound_per_workspace: int = attrs.field(default=64, validator=_positive)
    llm_base_url: str = attrs.field(default="https://api.openai.com/v1", validator=_http_url)

    @classmethod
    def load(
        cls,
        options: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] = os.environ,
        config_file: Path | None = None,
    ) -> Settings:
        """Merge the sources, converting each value to its field's type.

        Raises InvalidSetting naming the setting and what it expects.
        """
        values: dict[str, Any] = {}
        if config_file is not None and config_file.exists():
            values.update(read_toml(config_file).get("flowtrux", {}))
        for field in attrs.fields(cls):
            env_value = environ.get(ENV_PREFIX + field.name.upper())
            if env_value is not None:
                values[field.name] = env_value
        values.update({key: value for key, value in (options or {}).items() if value is not None})
        unknown = values.keys() - attrs.fields_dict(cls).keys()
        if unknown:
            raise InvalidSetting(f"unknown settings: {', '.join(sorted(unknown))}")
        fields = attrs.fields_dict(cls)
        return cls(**{name: _convert(fields[name], value) for name, value in values.items()})


attrs.resolve_types(Settings)  # field.type: the class, not its name (annotations are strings)


def _convert(field: attrs.Attribute[Any], value: Any) -> Any:
    kind = field.type
    if kind not in (int, float):
        return str(value)
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise InvalidSetting(f"{field.name} must be a number, got {value!r}") from None


def read_toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as file:
        return tomllib.load(file)
