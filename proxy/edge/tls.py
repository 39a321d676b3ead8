"""TLS on the bridge's own port(s), for a shared service with no mesh in front: the
certificate and key of `tls_cert_file` and `tls_key_file`, loaded into one server context
that uvicorn serves with. On every reload (SIGHUP, a config file change) the files the
config names are read again into that same context, so the next handshake presents the
new certificate while connections already open keep theirs; files that do not load are
refused with a log line and the certificate in use stays.
"""

import ssl
from typing import Any

import structlog

from proxy.config.network import NetworkSettings


def server_context(settings: NetworkSettings) -> ssl.SSLContext | None:
    """The server's TLS context, or None when TLS is off."""
    if not settings.tls_cert_file:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])  # what the server speaks
    context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    return context


class Certificates:
    """The server context, and what reloads its certificate."""

    def __init__(self, context: ssl.SSLContext, settings: NetworkSettings) -> None:
        self.context = context
        self._files = (settings.tls_cert_file, settings.tls_key_file)

    def reload(self, settings: NetworkSettings) -> None:
        """Read the certificate and key the (new) settings name into the context."""
        log = structlog.get_logger("complete-bridge")
        files = (settings.tls_cert_file, settings.tls_key_file)
        if not files[0]:
            log.warning("tls.needs_restart", hint="turning TLS off takes effect on restart")
            return
        try:
            self.context.load_cert_chain(*files)
        except (OSError, ssl.SSLError) as exc:
            log.error("tls.reload_failed", cert_file=files[0], error=str(exc))
            return
        self._files = files
        log.info("tls.reloaded", cert_file=files[0])


def serve_tls(config: Any, app: Any, settings: NetworkSettings) -> None:
    """With tls_cert_file set: uvicorn's `config` serves with our context, whose
    certificate the app's reloader reloads. Does nothing when TLS is off."""
    context = server_context(settings)
    if context is None:
        return
    config.load()  # uvicorn's own setup, then our context instead of one it would make
    config.ssl = context
    reloader = app.state.reloader
    if reloader is not None:
        reloader.applied.append(Certificates(context, settings).reload)
