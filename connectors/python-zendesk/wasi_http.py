"""A blocking HTTP GET over `wasi:http/outgoing-handler`, through componentize-py's generated
bindings. The host's gate sees every request and adds the credentials: nothing here (or anywhere
in this connector) holds a secret.

componentize-py ships an asyncio poll loop (poll_loop.py) for wasi:http, but it imports the
bindings module as `types`, which our world names `wasi_http_types` (the contract has its own
`types` interface); a connector call is one blocking request at a time anyway, so this waits on
each pollable directly.
"""

from urllib.parse import urlsplit

from componentize_py_types import Err, Ok
from wit_world.imports import outgoing_handler
from wit_world.imports.streams import StreamError_Closed
from wit_world.imports.wasi_http_types import (
    ErrorCode_HttpRequestDenied,
    Fields,
    IncomingBody,
    Method_Get,
    OutgoingRequest,
    Scheme_Http,
    Scheme_Https,
)

from zendesk import ConnectorError

# Larger bodies are refused rather than buffered: memory is limited per instance.
MAX_BODY = 32 << 20


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case name -> last value (str)
        self.body = body


def get(url):
    """GET `url`; returns a Response whatever the status. Transport failures raise
    ConnectorError: a request the gate denied is `forbidden`, anything else `upstream`."""
    parts = urlsplit(url)
    target = f"GET {parts.path}"
    headers = Fields.from_list([("accept", b"application/json"), ("user-agent", b"airlock-python-zendesk")])
    request = OutgoingRequest(headers)
    request.set_method(Method_Get())
    request.set_scheme(Scheme_Https() if parts.scheme == "https" else Scheme_Http())
    request.set_authority(parts.netloc)
    request.set_path_with_query(parts.path + (f"?{parts.query}" if parts.query else ""))
    try:
        future = outgoing_handler.handle(request, None)
    except Err as e:
        raise transport_error(e.value, target)
    with future:
        with future.subscribe() as ready:
            ready.block()
        outcome = future.get()
    # get(): None (not ready; cannot happen after block), Err(()) (already taken), or
    # Ok(Ok(response) | Err(error-code)).
    if not isinstance(outcome, Ok):
        raise ConnectorError("internal", f"{target}: response future in unexpected state")
    if isinstance(outcome.value, Err):
        raise transport_error(outcome.value.value, target)
    with outcome.value.value as response:
        status = response.status()
        with response.headers() as fields:
            head = {name.lower(): value.decode("latin-1") for name, value in fields.entries()}
        body = read_body(response.consume(), target)
    return Response(status, head, body)


def read_body(incoming, target):
    chunks, size = [], 0
    with incoming:
        with incoming.stream() as stream:
            while True:
                try:
                    chunk = stream.blocking_read(64 * 1024)
                except Err as e:
                    if isinstance(e.value, StreamError_Closed):
                        break
                    raise ConnectorError("upstream", f"{target}: reading the body failed")
                size += len(chunk)
                if size > MAX_BODY:
                    raise ConnectorError("upstream", f"{target}: body larger than {MAX_BODY} bytes")
                chunks.append(chunk)
    return b"".join(chunks)


def transport_error(code, target):
    if isinstance(code, ErrorCode_HttpRequestDenied):
        return ConnectorError("forbidden", f"request denied by host policy: {target}")
    return ConnectorError("upstream", f"{target}: transport error: {type(code).__name__}")
