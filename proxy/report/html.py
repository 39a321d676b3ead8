"""The migration report as one self-contained HTML page: inline CSS, SVG bar charts
(charts.py), no script, no external URL (a Content-Security-Policy forbids both). Every value
from the log is untrusted and goes through `html.escape`."""

from proxy.report import html_cockpit as cockpit
from proxy.report.charts import day_bars, hbars
from proxy.report.markup import esc, more, ms, pct, table
from proxy.report.rows import Report

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1em auto; max-width: 96em; color: #222;
  padding: 0 1em; }
h1 { font-size: 1.4em; margin: .2em 0; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { padding: .2em .7em; border-bottom: 1px solid #ddd; text-align: left;
  vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2em 1em; }
dt { font-weight: 600; } dd { margin: 0; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
rect.bar { fill: #4a78b5; } rect.err { fill: #c8423b; }
.more { color: #666; font-style: italic; }
.legend { color: #555; font-size: .9em; max-width: 60em; }
pre { margin: 0; font-size: 11px; line-height: 1.25; background: #f4f4f4; padding: .2em .5em; }
#decisions { width: 100%; } #decisions td:nth-child(4) { width: 52%; }
#decisions td:nth-child(2) { white-space: nowrap; }
#decisions ul { margin: .1em 0 0 1.1em; padding: 0; font-size: .9em; }
#decisions + .legend, #summary-line { margin: .2em 0; } #decisions-h { margin-top: 1em; }
#decisions td.end { padding: 0; height: 4px; background: #0b6e4f; }
.v { padding: .05em .5em; border-radius: .6em; color: #fff; white-space: nowrap; }
.v.ok { background: #2e7d32; } .v.hold { background: #c8423b; } .v.wait { background: #777; }
p.hold { color: #c8423b; font-weight: 600; }
#arms { font-size: 13px; }
"""


def render_html(report: Report) -> str:
    t = report.totals
    summary = [
        ("Period", f"{report.first or '-'} .. {report.last or '-'}"),
        ("Legacy requests", f"{t.requests:,} ({t.streams:,} streamed)"),
        ("Callers", f"{t.callers:,}"),
        ("Legacy models", f"{t.models:,}"),
        ("Errors", f"{t.errors:,} ({pct(t.error_rate)} of answered)"),
        ("Client hang-ups", f"{t.hangups:,}"),
        ("Tokens", f"{t.input_tokens:,} in, {t.output_tokens:,} out"),
        ("Lines", f"{report.lines:,} read, {report.skipped:,} skipped, {report.outside:,} outside"),
        ("Events", ", ".join(f"{k} {v:,}" for k, v in report.events.items()) or "none"),
    ]
    sections = [
        cockpit.summary_line(report),
        cockpit.decisions(report),
        cockpit.arms(report),
        cockpit.callers(report),
        "<h2>Adaptations</h2><p>What the bridge changed in a request: the prompts that "
        "will need attention when their callers migrate.</p>",
        hbars(
            "chart-adaptations",
            "requests by adaptation",
            [(a.kind, a.requests) for a in report.adaptations],
        ),
        table(
            "adaptations",
            ["adaptation", "requests", "share", "top models", "top callers"],
            [
                [a.kind, a.requests, pct(a.share)]
                + [
                    ", ".join(f"{k} ({n:,})" for k, n in top)
                    for top in (a.top_models, a.top_callers)
                ]
                for a in report.adaptations
            ],
        ),
        more(report.adaptations_more, "kinds"),
        cockpit.costs(report),
        cockpit.choices(report),
        "<h2>Details</h2>",
        '<dl id="summary">' + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in summary),
        "</dl>",
        "<h2>Legacy requests per day</h2>",
        day_bars(report),
        "<h2>Callers in detail (key fingerprints)</h2>",
        hbars(
            "chart-callers", "requests by caller", [(c.caller, c.requests) for c in report.callers]
        ),
        table(
            "callers",
            ["caller", "requests", "share", "errors", "last seen", "models"],
            [
                [
                    c.caller,
                    c.requests,
                    pct(c.share),
                    c.errors,
                    c.last_seen or "-",
                    ", ".join(c.models),
                ]
                for c in report.callers
            ],
        ),
        more(report.callers_more, "callers"),
        "<h2>Legacy models</h2>",
        hbars(
            "chart-models",
            "requests by legacy model",
            [(m.legacy_model, m.requests) for m in report.models],
        ),
        table(
            "models",
            ["legacy model", "requests", "share", "errors", "callers", "upstream models"],
            [
                [
                    m.legacy_model,
                    m.requests,
                    pct(m.share),
                    m.errors,
                    m.callers,
                    ", ".join(m.upstream_models),
                ]
                for m in report.models
            ],
        ),
        more(report.models_more, "models"),
        "<h3>Routes and arms</h3><p>Errors: status 400 or more, or an error type, among "
        "answered requests; client hang-ups are counted apart. Durations in ms.</p>",
        table(
            "routes",
            [
                "route",
                "arm",
                "mode",
                "requests",
                "errors",
                "error rate",
                "hang-ups",
                "p50",
                "p95",
                "TTFB p50",
                "TTFB p95",
            ],
            [
                [
                    r.route,
                    r.arm,
                    r.mode,
                    r.requests,
                    r.errors,
                    pct(r.error_rate),
                    r.hangups,
                    ms(r.duration_p50_ms),
                    ms(r.duration_p95_ms),
                    ms(r.ttfb_p50_ms),
                    ms(r.ttfb_p95_ms),
                ]
                for r in report.routes
            ],
        ),
    ]
    if report.shadow:
        sections += [
            "<h2>Shadow comparisons</h2><p>Agreement rates are over comparisons that did "
            "not fail. Similar: mean token-set similarity of the two answers (1: the same words); "
            "length ratio: the secondary's length over the primary's, on average.</p>",
            table(
                "shadow",
                [
                    "route",
                    "comparisons",
                    "skipped",
                    "failed",
                    "exact",
                    "normalised",
                    "stop reason",
                    "similar",
                    "length ratio",
                ],
                [
                    [
                        s.route,
                        s.comparisons,
                        s.skipped,
                        s.failed,
                        pct(s.exact_rate),
                        pct(s.normalised_rate),
                        pct(s.stop_rate),
                        pct(s.similarity),
                        "-" if s.length_ratio is None else f"{s.length_ratio:.2f}",
                    ]
                    for s in report.shadow
                ],
            ),
        ]
    sections.append(cockpit.timeline(report))
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        "<meta http-equiv=Content-Security-Policy "
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        "<title>complete-bridge migration report</title>"
        f"<style>{CSS}</style></head><body>"
        "<h1>complete-bridge migration report</h1>" + "\n".join(sections) + "</body></html>\n"
    )
