"""The shard's settings: one frozen object, built from the ``INTERLINK_*`` environment once at start.

Every value is checked here so that a typo stops the start with one line naming the variable and
what it accepts, instead of surfacing later as a confusing failure deep in a request.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

PREFIX = "INTERLINK_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("json", "text")
REDIS_SCHEMES = ("redis", "rediss", "unix")
DEFAULT_META_GRAPH_URL = "https://graph.facebook.com/v25.0"
DEFAULT_GENESYS_LOGIN_URL = "https://login.{region}"
DEFAULT_GENESYS_API_URL = "https://api.{region}"


class SettingsError(ValueError):
    """A setting is missing or malformed. ``str()`` is the one line shown to the operator."""

    def __init__(self, variable: str, accepts: str, got: str | None = None) -> None:
        self.variable = variable
        shown = f", got {got!r}" if got is not None else ""
        super().__init__(f"{variable}: expected {accepts}{shown}")


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    redis_url: str | None = None
    data_dir: Path = Path("./var")
    # Secrets never reach a repr: a Settings object may end up in a log line or a traceback.
    admin_token: str | None = field(default=None, repr=False)
    secret_keys: tuple[bytes, ...] = field(default=(), repr=False)
    shard_id: int = 0
    shard_count: int = 1
    public_url: str = ""
    meta_graph_url: str = DEFAULT_META_GRAPH_URL
    genesys_login_url: str = DEFAULT_GENESYS_LOGIN_URL
    genesys_api_url: str = DEFAULT_GENESYS_API_URL
    log_level: str = "INFO"
    log_format: str = "json"
    shutdown_timeout: float = 10.0
    # The HTTP server's defences against hostile connections (interlink.http.server).
    http_max_connections: int = 1000
    http_header_timeout: float = 10.0
    http_body_timeout: float = 30.0
    http_idle_timeout: float = 75.0
    unknown: tuple[str, ...] = ()

    @property
    def base_url(self) -> str:
        """Where Meta and Genesys reach this deployment (media links)."""
        return self.public_url or f"http://{self.host}:{self.port}"

    def genesys_login_base(self, region: str) -> str:
        return self.genesys_login_url.replace("{region}", region).rstrip("/")

    def genesys_api_base(self, region: str) -> str:
        return self.genesys_api_url.replace("{region}", region).rstrip("/")


KNOWN = frozenset(
    PREFIX + name
    for name in (
        "HOST PORT REDIS_URL DATA_DIR ADMIN_TOKEN SECRET_KEY SHARD_ID SHARD_COUNT PUBLIC_URL "
        "META_GRAPH_URL GENESYS_LOGIN_URL GENESYS_API_URL LOG_LEVEL LOG_FORMAT SHUTDOWN_TIMEOUT "
        "HTTP_MAX_CONNECTIONS HTTP_HEADER_TIMEOUT HTTP_BODY_TIMEOUT HTTP_IDLE_TIMEOUT "
        # Read by the CLI and the test suite, not by the shard; known so that they raise no warning.
        "URL TEST_REDIS_URL"
    ).split()
)


def load(
    environ: Mapping[str, str] | None = None,
    *,
    env_file: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> Settings:
    """Build the settings from ``environ`` (default ``os.environ``), a dotenv file and flags.

    Precedence: a command-line flag (``overrides``) wins over the environment, which wins over the
    dotenv file. Raises :class:`SettingsError` for the first bad value.
    """
    env: dict[str, str] = {}
    if env_file is not None:
        env.update(read_env_file(env_file))
    env.update(os.environ if environ is None else environ)
    overrides = dict(overrides or {})

    def get(name: str) -> str | None:
        value = env.get(PREFIX + name)
        return value if value not in (None, "") else None

    host = str(overrides.get("host") or get("HOST") or "127.0.0.1")
    port = _int("PORT", overrides.get("port") or get("PORT"), 8080, 0, 65535)
    shard_count = _int("SHARD_COUNT", get("SHARD_COUNT"), 1, 1, 100_000)
    shard_raw = get("SHARD_ID")
    if shard_raw is None and shard_count > 1:
        shard_raw = _ordinal_from_hostname(env.get("HOSTNAME") or socket.gethostname())
    shard_id = _int("SHARD_ID", shard_raw, 0, 0, shard_count - 1)
    redis_url = get("REDIS_URL")
    if redis_url is not None and urlsplit(redis_url).scheme not in REDIS_SCHEMES:
        raise SettingsError(PREFIX + "REDIS_URL", "a redis://, rediss:// or unix:// URL", redis_url)

    log_level = (get("LOG_LEVEL") or "INFO").upper()
    if log_level not in LOG_LEVELS:
        raise SettingsError(PREFIX + "LOG_LEVEL", " | ".join(LOG_LEVELS), log_level)
    log_format = (get("LOG_FORMAT") or "json").lower()
    if log_format not in LOG_FORMATS:
        raise SettingsError(PREFIX + "LOG_FORMAT", " | ".join(LOG_FORMATS), log_format)

    shutdown_timeout = _seconds("SHUTDOWN_TIMEOUT", get("SHUTDOWN_TIMEOUT"), 10.0)

    return Settings(
        host=host,
        port=port,
        redis_url=redis_url,
        data_dir=Path(get("DATA_DIR") or "./var"),
        admin_token=get("ADMIN_TOKEN"),
        secret_keys=_secret_keys(get("SECRET_KEY")),
        shard_id=shard_id,
        shard_count=shard_count,
        public_url=_url("PUBLIC_URL", get("PUBLIC_URL"), "").rstrip("/"),
        meta_graph_url=_url("META_GRAPH_URL", get("META_GRAPH_URL"), DEFAULT_META_GRAPH_URL),
        genesys_login_url=_url(
            "GENESYS_LOGIN_URL", get("GENESYS_LOGIN_URL"), DEFAULT_GENESYS_LOGIN_URL
        ),
        genesys_api_url=_url("GENESYS_API_URL", get("GENESYS_API_URL"), DEFAULT_GENESYS_API_URL),
        log_level=log_level,
        log_format=log_format,
        shutdown_timeout=shutdown_timeout,
        http_max_connections=_int(
            "HTTP_MAX_CONNECTIONS", get("HTTP_MAX_CONNECTIONS"), 1000, 1, 1_000_000
        ),
        http_header_timeout=_seconds("HTTP_HEADER_TIMEOUT", get("HTTP_HEADER_TIMEOUT"), 10.0),
        http_body_timeout=_seconds("HTTP_BODY_TIMEOUT", get("HTTP_BODY_TIMEOUT"), 30.0),
        http_idle_timeout=_seconds("HTTP_IDLE_TIMEOUT", get("HTTP_IDLE_TIMEOUT"), 75.0),
        unknown=tuple(sorted(k for k in env if k.startswith(PREFIX) and k not in KNOWN)),
    )


def decode_secret_key(text: str) -> bytes:
    """A master key is 32 bytes in urlsafe base64 (padding optional)."""
    text = text.strip()
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if len(raw) != 32:
        raise ValueError("not 32 bytes")
    return raw


def _secret_keys(raw: str | None) -> tuple[bytes, ...]:
    if raw is None:
        return ()
    try:
        return tuple(decode_secret_key(part) for part in raw.split(","))
    except (ValueError, binascii.Error):
        # Never echo the value: it is (or is meant to be) the master key.
        raise SettingsError(
            PREFIX + "SECRET_KEY", "one or more comma-separated urlsafe-base64 keys of 32 bytes"
        ) from None


def _int(name: str, raw: object, default: int, low: int, high: int) -> int:
    if raw is None:
        return default
    text = str(raw).strip()
    value = int(text) if re.fullmatch(r"-?[0-9]+", text) else low - 1  # int() would take "1_0"
    if not low <= value <= high:
        raise SettingsError(PREFIX + name, f"an integer from {low} to {high}", str(raw))
    return value


def _seconds(name: str, raw: str | None, default: float) -> float:
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:  # also refuses nan and inf
        raise SettingsError(PREFIX + name, "seconds between 0 and 3600", raw)
    return value


def _url(name: str, raw: str | None, default: str) -> str:
    if raw is None:
        return default
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise SettingsError(PREFIX + name, "an http:// or https:// base URL", raw)
    return raw.rstrip("/")


_ORDINAL = re.compile(r"-(\d+)$")


def _ordinal_from_hostname(hostname: str) -> str | None:
    """A StatefulSet pod is named ``<set>-<ordinal>``: the ordinal is the shard id."""
    match = _ORDINAL.search(hostname)
    return match.group(1) if match else None


def read_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read a dotenv file: ``KEY=value`` lines, ``#`` comments, optional ``export`` and quotes."""
    values: dict[str, str] = {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError("--env-file", "a readable dotenv file", str(path)) from exc
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise SettingsError("--env-file", f"KEY=value lines (line {number} is not)", None)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values
