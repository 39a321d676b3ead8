"""What the tests run against, in one place: the one fake Messages upstream (`upstream`:
its answers in `answers`, strict by `rules`, fault scripts in `faults` starting from
`fault_answer`, a gate), `sse` the one builder of stream events, `raw_server` and
`raw_client` for exact bytes on the wire, `loopback` (a test's own handler on a
loopback socket), `servers` (an in-loop uvicorn, a real bridge
process, the CLI, a free port) and `factories` (request and response bodies)."""
