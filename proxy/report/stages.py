"""Routes as the `config.applied` lines say they were, the stage of each (passthrough →
shadow → canary N % → translate → legacy off), when each changed stage, and the
config change that takes a route to its next stage, as TOML."""

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from proxy.report.rows import StageChange


@dataclass(frozen=True)
class ArmConfig:
    mode: str
    model: str | None


@dataclass(frozen=True)
class RouteConfig:
    name: str
    mode: str  # translate, passthrough, canary or shadow
    percent: float | None = None
    arms: dict[str, ArmConfig] = field(default_factory=dict)


def stage(route: RouteConfig) -> str:
    if route.mode in ("canary", "shadow") and route.percent is not None:
        return f"{route.mode} {route.percent:g} %"
    return route.mode


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _route(raw: object) -> RouteConfig | None:
    """One route of a config.applied line; None if it is not one (a line is untrusted)."""
    if not isinstance(raw, dict) or not (name := _text(raw.get("name"))):
        return None
    mode = raw.get("mode")
    if mode not in ("translate", "passthrough", "canary", "shadow"):
        return None
    percent = raw.get("percent")
    number = percent if isinstance(percent, int | float) and not isinstance(percent, bool) else None
    arms_raw = raw["arms"] if isinstance(raw.get("arms"), dict) else {}
    arms = {
        arm: ArmConfig(_text(value.get("mode")) or "translate", _text(value.get("model")))
        for arm, value in arms_raw.items()
        if arm in ("primary", "secondary") and isinstance(value, dict)
    }
    return RouteConfig(name, mode, None if number is None else float(number), arms)


@dataclass
class Applied:
    """What the config.applied lines say: the routes of the latest, its force_mode, each
    route's latest shadow config (what its shadow lines compared), and every change."""

    routes: dict[str, RouteConfig] = field(default_factory=dict)
    force: str | None = None
    shadowed: dict[str, RouteConfig] = field(default_factory=dict)
    changes: list[StageChange] = field(default_factory=list)


def configs_in_force(configs: list[tuple[datetime | None, dict[str, Any]]]) -> Applied:
    """The config.applied lines in time order (lines without a time last, in log order).
    Replicas log the same config at their start: a stage that did not change is no
    change."""
    ordered = sorted(configs, key=lambda c: (c[0] is None, c[0] or datetime.min))
    applied = Applied()
    current, force, changes = applied.routes, applied.force, applied.changes
    for moment, line in ordered:
        at = None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        routes = line["routes"] if isinstance(line.get("routes"), list) else []
        new = {r.name: r for r in map(_route, routes) if r is not None}
        for name, route in new.items():
            before = current.get(name)
            if before is None or stage(before) != stage(route):
                changes.append(StageChange(name, at, stage(route), _text(line.get("source"))))
        for name in sorted(current.keys() - new.keys()):
            changes.append(StageChange(name, at, "removed", _text(line.get("source"))))
        new_force = _text(line.get("force_mode"))
        if new_force != force:
            shown = f"force_mode {new_force}" if new_force else "force_mode off"
            changes.append(StageChange("(all routes)", at, shown, _text(line.get("source"))))
        current, force = new, new_force
        applied.shadowed.update({n: r for n, r in new.items() if r.mode == "shadow"})
    applied.routes, applied.force = current, force
    return applied


def toml(name: str, mode: str, percent: float | None, arms: dict[str, ArmConfig]) -> str | None:
    """The keys to set in route `name`'s [[routes]] table (its match and the arms'
    other keys stay as they are); None when the arms are not known (a route read from
    its calls: a shadow's secondary makes no complete line)."""
    lines = ["[[routes]]"]
    lines += [f"name = {_quoted(name)}", f'mode = "{mode}"']
    if mode in ("canary", "shadow"):
        if set(arms) != {"primary", "secondary"}:
            return None
        lines.append(f"percent = {percent or 0:g}")
        lines += [f"{arm} = {{ {_arm(arms[arm])} }}" for arm in ("primary", "secondary")]
    elif (model := arms.get("primary", ArmConfig(mode, None)).model) is not None:
        lines.append(f"model = {_quoted(model)}")
    return "\n".join(lines)


def _arm(arm: ArmConfig) -> str:
    return f'mode = "{arm.mode}"' + (f", model = {_quoted(arm.model)}" if arm.model else "")


def _quoted(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(text, ensure_ascii=False)
