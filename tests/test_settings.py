import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from interlink.http.auth import LoginThrottle
from interlink.settings import Settings, SettingsError, load, read_env_file
from tests.support.shard import ShardProcess

KEY = "q8nUsPK2sa0FQmpVnhdGUMhbN9QZ0J8uYHhu4cXBv5A="  # 32 random bytes made for this test


def test_defaults_match_the_interface() -> None:
    s = load({})
    assert (s.host, s.port, s.redis_url, s.data_dir) == ("127.0.0.1", 8080, None, Path("./var"))
    assert (s.shard_id, s.shard_count) == (0, 1)
    assert s.base_url == "http://127.0.0.1:8080"
    assert s.meta_graph_url == "https://graph.facebook.com/v25.0"
    assert s.genesys_login_base("mypurecloud.ie") == "https://login.mypurecloud.ie"
    assert s.genesys_api_base("mypurecloud.ie") == "https://api.mypurecloud.ie"
    assert (s.log_level, s.log_format) == ("INFO", "json")


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        (
            "INTERLINK_PORT",
            "http",
            "INTERLINK_PORT: expected an integer from 0 to 65535, got 'http'",
        ),
        ("INTERLINK_PORT", "70000", "INTERLINK_PORT"),
        ("INTERLINK_REDIS_URL", "mysql://x", "INTERLINK_REDIS_URL: expected a redis://"),
        ("INTERLINK_SHARD_COUNT", "0", "INTERLINK_SHARD_COUNT"),
        ("INTERLINK_SHARD_ID", "1", "INTERLINK_SHARD_ID: expected an integer from 0 to 0"),
        ("INTERLINK_LOG_LEVEL", "LOUD", "INTERLINK_LOG_LEVEL: expected DEBUG | INFO"),
        ("INTERLINK_LOG_FORMAT", "xml", "INTERLINK_LOG_FORMAT"),
        (
            "INTERLINK_PUBLIC_URL",
            "ftp://x",
            "INTERLINK_PUBLIC_URL: expected an http:// or https://",
        ),
        ("INTERLINK_META_GRAPH_URL", "graph.facebook.com", "INTERLINK_META_GRAPH_URL"),
        ("INTERLINK_SHUTDOWN_TIMEOUT", "-1", "INTERLINK_SHUTDOWN_TIMEOUT"),
        (
            "INTERLINK_HTTP_MAX_CONNECTIONS",
            "0",
            "INTERLINK_HTTP_MAX_CONNECTIONS: expected an integer",
        ),
        ("INTERLINK_HTTP_MAX_CONNECTIONS", "1e3", "INTERLINK_HTTP_MAX_CONNECTIONS"),
        ("INTERLINK_HTTP_HEADER_TIMEOUT", "0", "INTERLINK_HTTP_HEADER_TIMEOUT: expected seconds"),
        ("INTERLINK_HTTP_BODY_TIMEOUT", "nan", "INTERLINK_HTTP_BODY_TIMEOUT"),
        ("INTERLINK_HTTP_IDLE_TIMEOUT", "soon", "INTERLINK_HTTP_IDLE_TIMEOUT"),
        (
            "INTERLINK_CONTROL_RELAY_TIMEOUT",
            "0",
            "INTERLINK_CONTROL_RELAY_TIMEOUT: expected seconds",
        ),
        (
            "INTERLINK_TRUSTED_PROXIES",
            "10.0.0.0/8,10.0.0.300",
            "INTERLINK_TRUSTED_PROXIES: expected comma-separated IP addresses or CIDR networks, "
            "got '10.0.0.300'",
        ),
        ("INTERLINK_TRUSTED_PROXIES", "10.0.0.0/33", "INTERLINK_TRUSTED_PROXIES"),
        ("INTERLINK_TRUSTED_PROXIES", "proxy.internal", "INTERLINK_TRUSTED_PROXIES"),
    ],
)
def test_a_bad_value_names_the_variable_and_what_it_accepts(
    name: str, value: str, fragment: str
) -> None:
    with pytest.raises(SettingsError) as info:
        load({name: value})
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_a_bad_secret_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(SettingsError) as info:
        load({"INTERLINK_SECRET_KEY": "not-a-key-but-a-secret-anyway"})
    assert "not-a-key-but-a-secret-anyway" not in str(info.value)
    assert "INTERLINK_SECRET_KEY" in str(info.value)


def test_secret_keys_allow_rotation_and_stay_out_of_the_repr() -> None:
    other = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    s = load(
        {"INTERLINK_SECRET_KEY": f"{KEY},{other}", "INTERLINK_ADMIN_TOKEN": "op-token-1234567890"}
    )
    assert len(s.secret_keys) == 2 and all(len(k) == 32 for k in s.secret_keys)
    assert s.secret_keys[1] == bytes(range(32))
    assert "op-token" not in repr(s) and "secret_keys" not in repr(s)


def test_shard_id_from_a_statefulset_host_name() -> None:
    s = load(fleet_env(SHARD_COUNT="4", SHARD_ID=None, HOSTNAME="interlink-2"))
    assert s.shard_id == 2
    # With one shard the host name is not consulted (a laptop called "dev-7" must still start).
    assert load({"HOSTNAME": "dev-7"}).shard_id == 0


def test_unknown_interlink_variables_are_collected_for_a_warning() -> None:
    assert load({"INTERLINK_PROT": "1", "INTERLINK_PORT": "9"}).unknown == ("INTERLINK_PROT",)


def test_flags_win_over_the_environment_which_wins_over_the_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        '# comment\nexport INTERLINK_PORT=7000\nINTERLINK_HOST="0.0.0.0"\nINTERLINK_LOG_LEVEL=debug\n'
    )
    s = load({"INTERLINK_HOST": "10.1.1.1"}, env_file=env_file, overrides={"port": "9000"})
    assert (s.host, s.port, s.log_level) == ("10.1.1.1", 9000, "DEBUG")
    assert read_env_file(env_file)["INTERLINK_HOST"] == "0.0.0.0"


def test_http_limits_have_defaults_and_are_read_from_the_environment() -> None:
    s = load({})
    assert (s.http_max_connections, s.http_header_timeout) == (1000, 10.0)
    assert (s.http_body_timeout, s.http_idle_timeout) == (30.0, 75.0)
    s = load(
        {
            "INTERLINK_HTTP_MAX_CONNECTIONS": "50",
            "INTERLINK_HTTP_HEADER_TIMEOUT": "2.5",
            "INTERLINK_HTTP_BODY_TIMEOUT": "5",
            "INTERLINK_HTTP_IDLE_TIMEOUT": "120",
        }
    )
    assert (s.http_max_connections, s.http_header_timeout) == (50, 2.5)
    assert (s.http_body_timeout, s.http_idle_timeout) == (5.0, 120.0)
    assert s.unknown == ()


def test_the_control_relay_timeout_has_a_default_and_is_read_from_the_environment() -> None:
    assert load({}).control_relay_timeout == 8.0
    s = load({"INTERLINK_CONTROL_RELAY_TIMEOUT": "2.5"})
    assert s.control_relay_timeout == 2.5 and s.unknown == ()


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Settings().port = 1  # type: ignore[misc]


def test_serve_with_a_bad_value_exits_2_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "interlink", "serve"],
        env={
            "INTERLINK_PORT": "eighty",
            "INTERLINK_DATA_DIR": str(tmp_path),
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "interlink: INTERLINK_PORT: expected an integer from 0 to 65535, got 'eighty'"
    ]


# -- a fleet fails closed: a shard missing a shared setting refuses to start ----------------------
def fleet_env(**changes: str | None) -> dict[str, str]:
    """Everything a shard of a two-shard fleet needs; ``NAME=None`` leaves INTERLINK_NAME out."""
    env = {
        "INTERLINK_SHARD_COUNT": "2",
        "INTERLINK_SHARD_ID": "1",
        "INTERLINK_REDIS_URL": "redis://127.0.0.1:1/0",
        "INTERLINK_SECRET_KEY": KEY,
        "INTERLINK_ADMIN_TOKEN": "op-token-made-for-this-test",
        "HOSTNAME": "interlink",
    }
    for name, value in changes.items():
        key = name if name == "HOSTNAME" else "INTERLINK_" + name
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def refusal(env: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as info:
        load(env)
    line = str(info.value)
    assert "\n" not in line
    return line


def test_a_complete_fleet_shard_loads() -> None:
    s = load(fleet_env())
    assert (s.shard_id, s.shard_count, s.redis_url) == (1, 2, "redis://127.0.0.1:1/0")


@pytest.mark.parametrize("name", ["REDIS_URL", "SECRET_KEY", "ADMIN_TOKEN"])
def test_a_fleet_shard_without_a_shared_setting_is_refused(name: str) -> None:
    # Unset, each pod would invent its own store or keys and accept work no other pod can read.
    line = refusal(fleet_env(**{name: None}))
    assert line.startswith(f"INTERLINK_{name}: ")
    assert "INTERLINK_SHARD_COUNT" in line
    # An empty value is unset too (a Secret key that resolved to nothing).
    assert refusal(fleet_env(**{name: ""})).startswith(f"INTERLINK_{name}: ")


def test_a_fleet_shard_with_no_id_and_a_host_name_without_an_ordinal_is_refused() -> None:
    # Taken as shard 0, two such pods would both deliver shard 0's tenants.
    line = refusal(fleet_env(SHARD_ID=None, HOSTNAME="interlink"))
    assert line.startswith("INTERLINK_SHARD_ID: ")
    assert "'interlink'" in line


def test_a_shard_id_at_or_above_the_count_is_refused() -> None:
    line = refusal(fleet_env(SHARD_ID="2"))
    assert line.startswith("INTERLINK_SHARD_ID: ")
    assert "INTERLINK_SHARD_COUNT" in line and "'2'" in line


def test_an_ordinal_at_or_above_the_count_is_refused_naming_the_host_name() -> None:
    # A StatefulSet scaled to 4 replicas while INTERLINK_SHARD_COUNT still says 2.
    line = refusal(fleet_env(SHARD_ID=None, HOSTNAME="interlink-3"))
    assert line.startswith("INTERLINK_SHARD_ID: ")
    assert "'interlink-3'" in line and "INTERLINK_SHARD_COUNT" in line


def test_serve_in_a_fleet_without_a_redis_url_exits_2_with_one_line(tmp_path: Path) -> None:
    # Before, this shard started its own embedded store and answered webhooks nobody delivered.
    env = fleet_env(REDIS_URL=None, SHARD_ID=None, HOSTNAME="interlink-0")
    env |= {"INTERLINK_PORT": "0", "INTERLINK_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "interlink", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interlink: INTERLINK_REDIS_URL: ")
    assert not (tmp_path / "valkey").exists()


def test_a_single_shard_with_nothing_set_still_starts(tmp_path: Path) -> None:
    # `make run` stays zero-config: no Redis URL, no keys, a host name without an ordinal.
    assert load({"HOSTNAME": "laptop"}).shard_id == 0
    shard = ShardProcess(tmp_path, {"HOSTNAME": "laptop"}).start()
    try:
        assert shard.stop() == 0
    finally:
        shard.kill()


# -- trusted proxies -------------------------------------------------------------------------------
def test_trusted_proxies_default_to_none_and_feed_the_login_throttle() -> None:
    assert load({}).trusted_proxies == ()
    s = load({"INTERLINK_TRUSTED_PROXIES": " 10.0.0.0/8, 192.168.1.7,,2001:db8::/32 "})
    assert s.trusted_proxies == ("10.0.0.0/8", "192.168.1.7/32", "2001:db8::/32")
    assert s.unknown == ()
    throttle = LoginThrottle(trusted_proxies=s.trusted_proxies)
    assert [str(n) for n in throttle.trusted_proxies] == list(s.trusted_proxies)


# -- no secret in an error line --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("INTERLINK_REDIS_URL", "mysql://app:hunter2-pw@db.internal:3306/0"),
        ("INTERLINK_REDIS_URL", "http://:hunter2-pw@db.internal"),
        ("INTERLINK_REDIS_URL", "mysql://db.internal/0?password=hunter2-pw"),
        ("INTERLINK_REDIS_URL", "redis//:hunter2-pw@db.internal"),
        ("INTERLINK_REDIS_URL", "redis://:hunter2-pw@[::1"),  # urlsplit itself refuses this
        ("INTERLINK_PUBLIC_URL", "ftp://app:hunter2-pw@example.com"),
        ("INTERLINK_META_GRAPH_URL", "https://app:hunter2-pw@[graph"),
    ],
)
def test_a_bad_url_is_shown_without_its_password(name: str, value: str) -> None:
    line = refusal({name: value})
    assert line.startswith(name + ": ")
    assert "hunter2" not in line


def test_a_bad_redis_url_is_still_recognisable_once_redacted() -> None:
    line = refusal({"INTERLINK_REDIS_URL": "mysql://app:hunter2-pw@db.internal:3306/0"})
    assert "got 'mysql://app:****@db.internal:3306/0'" in line


def test_no_error_line_carries_the_admin_token() -> None:
    token = "op-token-made-for-this-test"
    for bad in (
        {"INTERLINK_PORT": "x"},
        {"INTERLINK_SECRET_KEY": "nope"},
        {"INTERLINK_SHARD_ID": "9"},
    ):
        assert token not in refusal({"INTERLINK_ADMIN_TOKEN": token} | bad)


def test_the_repr_of_settings_shows_no_password() -> None:
    password = secrets.token_urlsafe(16)
    loaded = load({"INTERLINK_REDIS_URL": f"redis://:{password}@redis:6379/0"})
    assert password not in repr(loaded)


def test_redis_cluster_is_a_flag_that_needs_a_tcp_node_url() -> None:
    assert load({}).redis_cluster is False
    node = "redis://:secret-made-for-this-test@node-0.redis:6379"
    assert load({"INTERLINK_REDIS_URL": node, "INTERLINK_REDIS_CLUSTER": "true"}).redis_cluster
    assert refusal({"INTERLINK_REDIS_CLUSTER": "yes"}).startswith(
        "INTERLINK_REDIS_CLUSTER: expected true | false"
    )
    # The embedded store is one server, and a cluster node is not reached over a socket file.
    unset = refusal({"INTERLINK_REDIS_CLUSTER": "true"})
    assert unset.startswith("INTERLINK_REDIS_URL: expected a redis:// or rediss:// URL")
    unix = refusal({"INTERLINK_REDIS_CLUSTER": "true", "INTERLINK_REDIS_URL": "unix:///r.sock"})
    assert unix.startswith("INTERLINK_REDIS_URL: ") and "r.sock" in unix
