"""What the tests run against, in one place: the one fake Messages upstream (`upstream`:
strict rules in `rules`, fault scripts in `faults`, a gate), `sse` the one builder of
stream events, `raw_server` and `raw_client` for exact bytes on the wire, `servers` (an
in-loop uvicorn, a real bridge process, a free port) and `factories` (request and
response bodies)."""
