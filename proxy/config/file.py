"""The TOML config file: read into Settings (its `[aliases]` and `[capabilities.MODEL]`
tables extend the model table, its `[[routes]]` become routes, its `[report]` table the
report's thresholds and prices, every other key is a setting), and an error in it named
by FILE:LINE."""

import re
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from proxy.config.models import Capabilities, ModelTable
from proxy.config.report_table import ReportTableError, parse_report
from proxy.config.settings import ConfigError, Settings, apply, check_value
from proxy.config.toml_lines import KeyPath, key_lines, line_of
from proxy.rollout.route_tables import RouteError, parse_routes


def from_file(settings: Settings, path: Path) -> Settings:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path}: not UTF-8 text ({exc.reason})") from None
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # its message ends "(at line N, column M)"
        found = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        where = f"{path}:{found[1]}" if found else str(path)
        raise ConfigError(f"{where}: not valid TOML ({exc})") from None
    try:
        models = model_table(
            settings.models, values.pop("aliases", {}), values.pop("capabilities", {})
        )
        routes = parse_routes(values.pop("routes", []), check_value)
        report = parse_report(values.pop("report", {}))
        settings = apply(settings, values, str, in_file=True)
        return replace(settings, models=models, routes=routes, report=report)
    except (RouteError, ConfigError, ReportTableError) as exc:
        raise ConfigError(_located(str(exc), exc.at, key_lines(text), path)) from None


def locate(error: ConfigError, path: Path) -> str:
    """The error's message led by `path:line:` when it names a key the file has (an error
    found once the file was read: a secret reference that does not resolve)."""
    if not error.at:
        return str(error)
    try:
        lines = key_lines(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return str(error)
    return _located(str(error), error.at, lines, path)


def _located(message: str, at: KeyPath, lines: dict[KeyPath, int], path: Path) -> str:
    line = line_of(lines, at)
    return f"{path}:{line}: {message}" if line is not None else f"{path}: {message}"


def model_table(table: ModelTable, aliases: Any, capabilities: Any) -> ModelTable:
    """`table` extended by a config file's `[aliases]` (tried first, in file order) and
    `[capabilities.MODEL]` tables (replacing a built-in entry of the same model)."""
    if not isinstance(aliases, dict):
        raise ConfigError('aliases: expected a table of pattern = "target model"', ("aliases",))
    for pattern, target in aliases.items():
        if not isinstance(target, str):
            raise ConfigError(
                f'aliases.{pattern}: expected "target model", got {target!r}', ("aliases", pattern)
            )
    if not isinstance(capabilities, dict):
        raise ConfigError("capabilities: expected [capabilities.MODEL] tables", ("capabilities",))
    parsed = {model: _capabilities(entry, model) for model, entry in capabilities.items()}
    return ModelTable(
        aliases=(*aliases.items(), *table.aliases),
        capabilities={**table.capabilities, **parsed},
    )


_CAPABILITY_FIELDS = {
    "max_output": int,
    "prefill": bool,
    "one_sampler": bool,
    "fixed_sampling": bool,
}


def _capabilities(entry: Any, model: str) -> Capabilities:
    where, at = f"capabilities.{model}", ("capabilities", model)
    if not isinstance(entry, dict) or "max_output" not in entry:
        raise ConfigError(f"{where}: expected a table with at least max_output", at)
    for key, value in entry.items():
        kind = _CAPABILITY_FIELDS.get(key)
        if kind is None:
            known = ", ".join(_CAPABILITY_FIELDS)
            raise ConfigError(f"{where}: unknown key {key!r} (known: {known})", (*at, key))
        if type(value) is not kind or (kind is int and isinstance(value, int) and value < 1):
            expected = "a whole number >= 1" if kind is int else "true or false"
            raise ConfigError(f"{where}.{key}: expected {expected}, got {value!r}", (*at, key))
    return Capabilities(**entry)
