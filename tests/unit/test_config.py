from pathlib import Path

import pytest

from proxy.config.file import from_file
from proxy.config.settings import ConfigError, Settings, apply, env_name, from_environ


def test_defaults() -> None:
    """Out of the box: the real API, loopback, port 8080, minutes-long read timeout."""
    s = Settings()
    assert (s.upstream_url, s.host, s.port) == ("https://api.anthropic.com", "127.0.0.1", 8080)
    assert s.first_byte_timeout >= 300
    assert s.echo_model and not s.log_text


def test_environment_values_are_parsed() -> None:
    """BRIDGE_* variables set every key, parsed to their types."""
    env = {
        "BRIDGE_UPSTREAM_URL": "http://127.0.0.1:9/",
        "BRIDGE_PORT": "9000",
        "BRIDGE_LOG_TEXT": "yes",
        "BRIDGE_FIRST_BYTE_TIMEOUT": "12.5",
        "UNRELATED": "x",
    }
    s = from_environ(Settings(), env)
    assert (s.upstream_url, s.port, s.log_text, s.first_byte_timeout) == (
        "http://127.0.0.1:9",
        9000,
        True,
        12.5,
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("port", "abc", "BRIDGE_PORT: expected an integer from 1 to 65535, got 'abc'"),
        ("port", "0", "BRIDGE_PORT: expected an integer from 1 to 65535, got '0'"),
        ("upstream_url", "ftp://x", "BRIDGE_UPSTREAM_URL: expected an http:// or https:// URL"),
        (
            "first_byte_timeout",
            "-1",
            "BRIDGE_FIRST_BYTE_TIMEOUT: expected a number of seconds above 0",
        ),
        ("log_text", "maybe", "BRIDGE_LOG_TEXT: expected true or false, got 'maybe'"),
        ("log_format", "xml", "BRIDGE_LOG_FORMAT: expected auto, json or console"),
        ("host", " ", "BRIDGE_HOST: expected a host name or address"),
        ("header_timeout", "0", "BRIDGE_HEADER_TIMEOUT: expected a number of seconds above 0"),
        ("body_timeout", "inf", "BRIDGE_BODY_TIMEOUT: expected a number of seconds above 0"),
        (
            "max_client_connections",
            "0",
            "BRIDGE_MAX_CLIENT_CONNECTIONS: expected an integer from 1 to 1000000, got '0'",
        ),
    ],
)
def test_bad_values_name_the_key_and_value(key: str, value: str, message: str) -> None:
    """A bad value fails naming where it came from and what it should be."""
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace("?", r"\?")):
        from_environ(Settings(), {env_name(key): value})


def test_toml_file(tmp_path: Path) -> None:
    """The TOML file uses the same keys, with native types."""
    path = tmp_path / "bridge.toml"
    path.write_text('upstream_url = "demo:"\nport = 9001\necho_model = false\n')
    s = from_file(Settings(), path)
    assert (s.upstream_url, s.port, s.echo_model) == ("demo:", 9001, False)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("port = true", "{path}:1: port: expected an integer from 1 to 65535, got True"),
        ("\nprot = 1", "{path}:2: prot: unknown setting (known: upstream_url, host"),
        ("port = ", "{path}: not valid TOML (Invalid value (at end of document))"),
        ("port = 1\nname = = 2", "{path}:2: not valid TOML"),
    ],
)
def test_bad_toml(tmp_path: Path, text: str, message: str) -> None:
    """File errors name the file, the line and the key."""
    path = tmp_path / "bridge.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        from_file(Settings(), path)
    assert str(caught.value).startswith(message.format(path=path))


def test_missing_file(tmp_path: Path) -> None:
    """A config file that is not there is named."""
    with pytest.raises(ConfigError, match="cannot read it"):
        from_file(Settings(), tmp_path / "nope.toml")


def test_apply_uses_the_source_naming() -> None:
    """Flags are named as flags."""
    with pytest.raises(ConfigError, match=r"^--port: "):
        apply(Settings(), {"port": "x"}, lambda key: "--" + key)


def test_model_table_in_the_file(tmp_path: Path) -> None:
    """[aliases] go before the built-in ones; [capabilities.MODEL] add or replace entries."""
    path = tmp_path / "bridge.toml"
    path.write_text(
        '[aliases]\n"claude-2.1" = "claude-opus-4-5"\n"legacy-*" = "my-model"\n'
        "[capabilities.my-model]\nmax_output = 8192\nprefill = false\n"
        "[capabilities.claude-opus-4-5]\nmax_output = 1000\n"
    )
    models = from_file(Settings(), path).models
    assert models.resolve("claude-2.1") == "claude-opus-4-5"
    assert models.resolve("claude-2.0") == "claude-sonnet-4-5"  # built-in still there
    assert models.resolve("legacy-x") == "my-model"
    mine = models.capabilities_of("my-model")
    assert mine is not None and (mine.max_output, mine.prefill) == (8192, False)
    opus = models.capabilities_of("claude-opus-4-5")
    assert opus is not None and opus.max_output == 1000 and not opus.one_sampler


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("aliases = 3", "{path}:1: aliases: expected a table of pattern"),
        ('[aliases]\n"a" = 1', '{path}:2: aliases.a: expected "target model", got 1'),
        ("capabilities = 3", "{path}:1: capabilities: expected [capabilities.MODEL] tables"),
        ("[capabilities.m]\nprefill = true", "{path}:1: capabilities.m: expected a table with"),
        (
            "[capabilities.m]\nmax_output = 0",
            "{path}:2: capabilities.m.max_output: expected a whole number >= 1, got 0",
        ),
        (
            '[capabilities.m]\nmax_output = 5\nprefill = "no"',
            "{path}:3: capabilities.m.prefill: expected true or false, got 'no'",
        ),
        (
            "[capabilities.m]\nmax_output = 5\nfoo = 1",
            "{path}:3: capabilities.m: unknown key 'foo'",
        ),
    ],
)
def test_bad_model_table(tmp_path: Path, text: str, message: str) -> None:
    """Model table mistakes name the table and key."""
    path = tmp_path / "bridge.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        from_file(Settings(), path)
    assert str(caught.value).startswith(message.format(path=path))


@pytest.mark.parametrize("text", ["port = inf", "max_body_bytes = -inf", "retries = nan"])
def test_infinite_numbers_are_config_errors(tmp_path: Path, text: str) -> None:
    """Regression: int(inf) raised OverflowError past the checks, which ended the reload
    watcher and made check-config print a traceback."""
    path = tmp_path / "bridge.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="expected an integer"):
        from_file(Settings(), path)


@pytest.mark.parametrize("key", ["upstream_key", "client_keys"])
def test_a_key_written_into_the_file_is_not_echoed(tmp_path: Path, key: str) -> None:
    """A key pasted where a reference belongs is refused without showing it (a reload
    would put the message in the log)."""
    path = tmp_path / "bridge.toml"
    path.write_text(f'{key} = "sk-ant-api03-SECRET"\n')
    with pytest.raises(ConfigError) as caught:
        from_file(Settings(), path)
    assert "SECRET" not in str(caught.value) and "env:NAME or file:PATH" in str(caught.value)
