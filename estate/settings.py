"""Settings of the service: command-line flags over environment (``ESTATE_*``) over defaults."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

ENV_PREFIX = "ESTATE_"


class SettingsError(ValueError):
    """Broken configuration; ``str()`` names the setting and what is wrong."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path = Field(default=Path("var"), description="where the log and state live")
    registry: Path | None = Field(
        default=None, description="estate.yaml or a folder of them (default: data_dir/estate.yaml)"
    )
    mqtt_url: str | None = Field(
        default=None, description="external broker, e.g. mqtt://host:1883; none = embedded amqtt"
    )
    mqtt_port: Annotated[int, Field(ge=0, le=65535)] = Field(
        default=1883, description="port of the embedded broker (0 = any free port)"
    )
    mqtt_protocol: Literal["5", "3.1.1"] | None = Field(
        default=None, description="MQTT version; default 5 (3.1.1 for the embedded amqtt broker)"
    )
    mqtt_client_id: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        default="estate-ingest", description="fixed client id: the persistent session's name"
    )
    mqtt_shared_group: str | None = Field(
        default=None, description="MQTT shared-subscription group for ingest replicas"
    )
    hash_salt_file: Path | None = Field(
        default=None, description="file holding the salt for credential hashes"
    )
    rules: Path | None = Field(
        default=None, description="rule file or folder of rule files (default: the shipped rules)"
    )
    http: str | None = Field(
        default="127.0.0.1:8080",
        description="HOST:PORT of the HTTP API and console (port 0: any free; 'off': none)",
    )
    influx_url: str | None = Field(
        default=None,
        description="InfluxDB to project time series into, e.g. http://127.0.0.1:8086?db=estate "
        "(token: ESTATE_INFLUX_TOKEN); none = no time series",
    )
    grafana_url: str | None = Field(
        default=None, description="Grafana base URL for the console's links to the boards"
    )
    lateness_s: Annotated[float, Field(ge=0, le=86400)] = Field(
        default=120.0, description="allowed lateness of readings, seconds of device time"
    )

    @property
    def log_path(self) -> Path:
        return self.data_dir / "estate.db"

    def http_address(self) -> tuple[str, int] | None:
        """``http`` as (host, port), or None when switched off."""
        if self.http is None or self.http.lower() in ("off", "none", ""):
            return None
        host, sep, port = self.http.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise SettingsError(
                f"http {self.http!r} (ESTATE_HTTP) is not HOST:PORT, e.g. 127.0.0.1:8080"
            )
        return host.strip("[]") or "127.0.0.1", int(port)

    @property
    def state_path(self) -> Path:
        """Snapshots of the detectors and projections (rebuildable from the log)."""
        return self.data_dir / "state.db"

    @property
    def registry_path(self) -> Path:
        return self.registry if self.registry is not None else self.data_dir / "estate.yaml"

    def hash_salt(self) -> bytes:
        """The salt for credential and plate hashes: ``ESTATE_HASH_SALT``, or a salt file.

        The salt never enters the log. When neither is given, a random salt is
        created once in ``data_dir/hash_salt`` (mode 0600) and kept.
        """
        env = os.environ.get(f"{ENV_PREFIX}HASH_SALT")
        if env:
            return env.encode()
        path = self.hash_salt_file or self.data_dir / "hash_salt"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_hex(32))
            path.chmod(0o600)
        salt = path.read_text().strip()
        if len(salt) < 16:
            raise SettingsError(f"hash salt in {path} is shorter than 16 characters")
        return salt.encode()


def load_settings(**overrides: object) -> Settings:
    """Settings from ``ESTATE_*`` environment variables, with non-None ``overrides`` on top."""
    values: dict[str, object] = {}
    for name in Settings.model_fields:
        env = os.environ.get(ENV_PREFIX + name.upper())
        if env is not None and env != "":
            values[name] = env
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])} ({ENV_PREFIX}{str(e['loc'][0]).upper()}): "
            f"{e['msg']}"
            for e in exc.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from None
