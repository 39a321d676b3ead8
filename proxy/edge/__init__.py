"""The edge: the ASGI app and the server around it. Reads legacy calls, answers them
through an arm (translated or passed on), swaps in a reloaded config, and holds each
connection to its limits."""
