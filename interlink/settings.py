"""The shard's settings: one frozen object, built from the ``INTERLINK_*`` environment once at start.

Every value is checked here so that a typo stops the start with one line naming the variable and
what it accepts, instead of surfacing later as a confusing failure deep in a request.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

PREFIX = "INTERLINK_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("json", "text")
REDIS_SCHEMES = ("redis", "rediss", "unix")
DEFAULT_META_GRAPH_URL = "https://graph.facebook.com/v25.0"
DEFAULT_GENESYS_LOGIN_URL = "https://login.{region}"
DEFAULT_GENESYS_API_URL = "https://api.{region}"
# With more than one shard these must be the same on every shard: unset, each would invent its
# own store or keys and accept work that no other shard can read.
FLEET_SHARED = ("REDIS_URL", "SECRET_KEY", "ADMIN_TOKEN")


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
    redis_url: str | None = field(default=None, repr=False)  # may carry a password
    # REDIS_URL names one node of a Redis Cluster (interlink.store.connection.connect).
    redis_cluster: bool = False
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
    # One log line per request (interlink.telemetry.logs.RequestLog); off: a busy shard's log is
    # mostly requests, and the metrics count them already.
    access_log: bool = False
    shutdown_timeout: float = 10.0
    # The HTTP server's defences against hostile connections (interlink.http.server).
    http_max_connections: int = 1000
    http_header_timeout: float = 10.0
    http_body_timeout: float = 30.0
    http_idle_timeout: float = 75.0
    # Proxies whose X-Forwarded-For is believed (interlink.http.auth.login_throttle), as CIDRs.
    trusted_proxies: tuple[str, ...] = ()
    # How long a shard waits for the owner of a tenant to answer a relayed control message.
    control_relay_timeout: float = 8.0
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
        "HOST PORT REDIS_URL REDIS_CLUSTER DATA_DIR ADMIN_TOKEN SECRET_KEY SHARD_ID SHARD_COUNT PUBLIC_URL "
        "META_GRAPH_URL GENESYS_LOGIN_URL GENESYS_API_URL LOG_LEVEL LOG_FORMAT ACCESS_LOG SHUTDOWN_TIMEOUT "
        "HTTP_MAX_CONNECTIONS HTTP_HEADER_TIMEOUT HTTP_BODY_TIMEOUT HTTP_IDLE_TIMEOUT "
        "TRUSTED_PROXIES CONTROL_RELAY_TIMEOUT "
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
    shard_id = _shard_id(get("SHARD_ID"), shard_count, env.get("HOSTNAME"))
    if shard_count > 1:
        for name in FLEET_SHARED:
            if get(name) is None:
                raise SettingsError(
                    PREFIX + name,
                    f"a value shared by every shard when INTERLINK_SHARD_COUNT is {shard_count}"
                    " (it is unset)",
                )
    redis_url = get("REDIS_URL")
    if redis_url is not None and _split(redis_url, REDIS_SCHEMES) is None:
        raise SettingsError(
            PREFIX + "REDIS_URL", "a redis://, rediss:// or unix:// URL", _shown_url(redis_url)
        )
    redis_cluster = _flag("REDIS_CLUSTER", get("REDIS_CLUSTER"), False)
    if redis_cluster and (redis_url is None or urlsplit(redis_url).scheme == "unix"):
        # The embedded store is one server, and a cluster node is reached over TCP.
        raise SettingsError(
            PREFIX + "REDIS_URL",
            "a redis:// or rediss:// URL of a cluster node when INTERLINK_REDIS_CLUSTER is true",
            None if redis_url is None else _shown_url(redis_url),
        )

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
        redis_cluster=redis_cluster,
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
        access_log=_flag("ACCESS_LOG", get("ACCESS_LOG"), False),
        shutdown_timeout=shutdown_timeout,
        http_max_connections=_int(
            "HTTP_MAX_CONNECTIONS", get("HTTP_MAX_CONNECTIONS"), 1000, 1, 1_000_000
        ),
        http_header_timeout=_seconds("HTTP_HEADER_TIMEOUT", get("HTTP_HEADER_TIMEOUT"), 10.0),
        http_body_timeout=_seconds("HTTP_BODY_TIMEOUT", get("HTTP_BODY_TIMEOUT"), 30.0),
        http_idle_timeout=_seconds("HTTP_IDLE_TIMEOUT", get("HTTP_IDLE_TIMEOUT"), 75.0),
        trusted_proxies=_networks("TRUSTED_PROXIES", get("TRUSTED_PROXIES")),
        control_relay_timeout=_seconds("CONTROL_RELAY_TIMEOUT", get("CONTROL_RELAY_TIMEOUT"), 8.0),
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


def _flag(name: str, raw: str | None, default: bool) -> bool:
    if raw is None:
        return default
    value = raw.strip().lower()
    if value not in ("true", "false"):
        raise SettingsError(PREFIX + name, "true | false", raw[:40])
    return value == "true"


def _int(name: str, raw: object, default: int, low: int, high: int) -> int:
    return _int_in(name, raw, default, low, high, f"an integer from {low} to {high}")


def _int_in(name: str, raw: object, default: int, low: int, high: int, accepts: str) -> int:
    if raw is None:
        return default
    text = str(raw).strip()
    value = int(text) if re.fullmatch(r"-?[0-9]+", text) else low - 1  # int() would take "1_0"
    if not low <= value <= high:
        raise SettingsError(PREFIX + name, accepts, str(raw))
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
    parts = _split(raw, ("http", "https"))
    if parts is None or not parts.netloc or parts.query or parts.fragment:
        raise SettingsError(PREFIX + name, "an http:// or https:// base URL", _shown_url(raw))
    return raw.rstrip("/")


def _split(url: str, schemes: tuple[str, ...]) -> SplitResult | None:
    """``url`` in parts if it has one of ``schemes`` and a readable host and port, else None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:  # also an unbalanced "[" in the host
        return None
    return parts if parts.scheme in schemes else None


def _shown_url(url: str) -> str:
    # Imported here: nothing else in the settings needs redis-py.
    from interlink.store.connection import redacted

    return redacted(url)


def _networks(name: str, raw: str | None) -> tuple[str, ...]:
    """Comma-separated addresses or CIDRs, each as its network (``10.1.2.3`` is ``10.1.2.3/32``)."""
    networks = []
    for entry in (raw or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(str(ipaddress.ip_network(entry, strict=False)))
        except ValueError:
            raise SettingsError(
                PREFIX + name, "comma-separated IP addresses or CIDR networks", entry
            ) from None
    return tuple(networks)


def _shard_id(raw: str | None, shard_count: int, hostname: str | None) -> int:
    """This shard's id: ``INTERLINK_SHARD_ID``, else (in a fleet) the host name's ordinal.

    In a fleet there is no default: two shards that both fell back to 0 would both deliver
    shard 0's tenants and nobody shard 1's."""
    accepts = f"an integer from 0 to {shard_count - 1}"
    if shard_count > 1:
        accepts += f" (below INTERLINK_SHARD_COUNT {shard_count})"
    if raw is not None or shard_count == 1:
        return _int_in("SHARD_ID", raw, 0, 0, shard_count - 1, accepts)
    hostname = hostname or socket.gethostname()
    ordinal = _ordinal_from_hostname(hostname)
    if ordinal is None:
        raise SettingsError(
            PREFIX + "SHARD_ID",
            f"{accepts}, or a host name ending in -<id>; the host name {hostname!r} has none",
        )
    if int(ordinal) >= shard_count:
        raise SettingsError(
            PREFIX + "SHARD_ID", f"{accepts}, got {ordinal} from the host name {hostname!r}"
        )
    return int(ordinal)


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
