"""The listening sockets of `serve`, bound before the server starts: an address that
cannot be had (a port in use, an address not on this host) is then a start-up error
of ours, one line naming it, rather than uvicorn's message and exit status."""

import socket


class ListenError(Exception):
    """An address `serve` cannot listen on; the message names it and says why."""


def address(host: str, port: int) -> str:
    """`host:port`, IPv6 literals in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bind(host: str, port: int) -> list[socket.socket]:
    """Sockets bound to every address `host` resolves to, as asyncio's create_server
    binds them (SO_REUSEADDR; IPv6 only on IPv6 sockets); none if any fails."""
    where = address(host, port)
    try:
        found = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ListenError(f"cannot listen on {where}: {exc.strerror}") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, addr in dict.fromkeys(found):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(addr)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        reason = (exc.strerror or str(exc)).lower()
        raise ListenError(f"cannot listen on {where}: {reason}") from None
    return sockets
