"""Settings: precedence, conversion, validation, and the README's settings table."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from arrowlog.config import Settings, settings_help, settings_markdown
from arrowlog.errors import InvalidInput

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No arrowlog.toml or ARROWLOG_* from the developer's machine leaks into the settings.
    monkeypatch.chdir(tmp_path)
    for var in [v for v in __import__("os").environ if v.startswith("ARROWLOG_")]:
        monkeypatch.delenv(var)


def test_defaults() -> None:
    s = Settings.load(env={})
    assert (s.host, s.flight_port, s.http_port) == ("127.0.0.1", 8815, 8080)
    assert s.token is None and s.tls_cert is None and s.tls_key is None
    assert s.max_body_bytes == 64 * 1024 * 1024
    assert s == Settings()


def test_precedence_defaults_toml_env_overrides(tmp_path: Path) -> None:
    toml = tmp_path / "arrowlog.toml"
    toml.write_text('http_port = 9000\nflight-port = 9001\ntoken = "from-toml"\nhost = "0.0.0.0"\n')
    env = {"ARROWLOG_FLIGHT_PORT": "9101", "ARROWLOG_TOKEN": "from-env", "OTHER": "x"}

    from_toml = Settings.load(env={})
    assert (from_toml.http_port, from_toml.flight_port, from_toml.token) == (
        9000,
        9001,
        "from-toml",
    )

    from_env = Settings.load(env=env)
    assert (from_env.http_port, from_env.flight_port, from_env.token) == (9000, 9101, "from-env")

    from_flags = Settings.load(env=env, flight_port=0, token="from-flag", http_port=None)
    # None means "flag not given": the lower layers stand.
    assert (from_flags.http_port, from_flags.flight_port, from_flags.token) == (
        9000,
        0,
        "from-flag",
    )
    assert from_flags.host == "0.0.0.0"


def test_explicit_toml_path_and_conversions(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    config = tmp_path / "elsewhere.toml"
    config.write_text(f'tls_cert = "{cert}"\ntls_key = "{key}"\nshutdown_timeout = 5\n')
    s = Settings.load(toml_path=config, env={"ARROWLOG_MAX_BODY_BYTES": "1024"})
    assert s.tls_cert == cert and isinstance(s.tls_cert, Path)
    assert s.tls_key == key
    assert s.shutdown_timeout == 5.0 and isinstance(s.shutdown_timeout, float)
    assert s.max_body_bytes == 1024


def test_an_empty_env_var_unsets_an_optional_setting(tmp_path: Path) -> None:
    (tmp_path / "arrowlog.toml").write_text('token = "from-toml"\n')
    assert Settings.load(env={"ARROWLOG_TOKEN": ""}).token is None
    assert Settings(token="").token is None


def test_the_token_never_shows_in_repr() -> None:
    s = Settings(token="very-secret-token")
    assert "very-secret-token" not in repr(s)
    assert "very-secret-token" not in str(s)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"ARROWLOG_HTTP_PORT": "eighty"},
            "setting http_port from ARROWLOG_HTTP_PORT must be int, got 'eighty'",
        ),
        ({"ARROWLOG_HTTP_PORT": "70000"}, "setting http_port must be at most 65535, got 70000"),
        ({"ARROWLOG_FLIGHT_PORT": "-1"}, "setting flight_port must be zero or more, got -1"),
        ({"ARROWLOG_MAX_BODY_BYTES": "0"}, "setting max_body_bytes must be positive, got 0"),
        (
            {"ARROWLOG_WAL_FSYNC": "maybe"},
            "setting wal_fsync from ARROWLOG_WAL_FSYNC must be bool, got 'maybe'",
        ),
        (
            {"ARROWLOG_TLS_CERT": "/etc/cert.pem"},
            "settings tls_cert and tls_key go together: set both or neither",
        ),
        ({"ARROWLOG_HOST": ""}, "setting host must not be empty"),
    ],
)
def test_bad_values_are_invalid_input_with_a_message(env: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInput) as e:
        Settings.load(env=env)
    assert str(e.value) == message


def test_bad_toml(tmp_path: Path) -> None:
    config = tmp_path / "arrowlog.toml"
    config.write_text("http_port = \n")
    with pytest.raises(InvalidInput, match=r"^cannot read settings file arrowlog.toml: "):
        Settings.load(env={})
    config.write_text("htp_port = 1\n")
    with pytest.raises(InvalidInput) as e:
        Settings.load(env={})
    assert str(e.value) == "unknown setting 'htp_port' in arrowlog.toml"
    config.write_text("http_port = 2.5\n")
    with pytest.raises(InvalidInput) as e:
        Settings.load(env={})
    assert str(e.value) == "setting http_port from arrowlog.toml must be int, got 2.5"


def test_shards_is_also_taken_under_its_former_name_partitions(tmp_path: Path) -> None:
    cluster = {"node_id": "n", "storage": "s3://bucket/prefix"}
    assert Settings.load(env={}, partitions=3, **cluster).shards == 3
    assert Settings.load(env={"ARROWLOG_PARTITIONS": "4"}, **cluster).shards == 4
    # The current name wins over the former one, from the same source.
    both = {"ARROWLOG_PARTITIONS": "4", "ARROWLOG_SHARDS": "5"}
    assert Settings.load(env=both, **cluster).shards == 5
    assert Settings.load(env={}, shards=6, partitions=7, **cluster).shards == 6
    toml = tmp_path / "old.toml"
    toml.write_text("partitions = 2\n")
    settings = Settings.load(toml_path=toml, env={}, **cluster)
    assert settings.shards == settings.partitions == 2


def test_unknown_override() -> None:
    with pytest.raises(InvalidInput) as e:
        Settings.load(env={}, http_prot=1)
    assert str(e.value) == "unknown setting 'http_prot'"


def test_every_setting_has_help() -> None:
    for name, _default, help in settings_help():
        assert help.strip().endswith("."), name


def test_readme_settings_table_lists_every_setting() -> None:
    readme = (REPO / "README.md").read_text()
    m = re.search(
        r"<!-- settings-table:start -->\n(.*?)<!-- settings-table:end -->", readme, re.DOTALL
    )
    assert m, "README.md lost its settings-table markers"
    table = m.group(1)
    documented = re.findall(r"^\| `([a-z0-9_]+)` \|", table, re.MULTILINE)
    assert documented == [f.name for f in dataclasses.fields(Settings)], (
        "README.md's settings table is out of date: paste `arrowlog settings --markdown` "
        "between its markers"
    )
    assert table == settings_markdown(), (
        "README.md's settings table differs from `arrowlog settings --markdown`: paste it in"
    )
