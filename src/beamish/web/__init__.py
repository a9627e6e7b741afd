"""beamish.web: the real-time web layer (ASGI endpoint, router, Channels, Presence, SSE)."""

from beamish._public import publish
from beamish.web._channel import Channel, ChannelError, SocketRef
from beamish.web._endpoint import Endpoint
from beamish.web._fastlane import broadcast, broadcast_from, local_broadcast
from beamish.web._messages import Broadcast
from beamish.web._presence import Presence
from beamish.web._request import request_id
from beamish.web._router import Router, RouteScope
from beamish.web._routing import RouteError
from beamish.web._serializer import Message, Serializer, SerializerError, V2JSONSerializer
from beamish.web._serve import EndpointServer, ListenError
from beamish.web._serve_granian import GranianEndpointServer
from beamish.web._socket import Socket, SocketOptions, SocketState
from beamish.web._sse import EventStream
from beamish.web._sse_hub import EventStreamInfo, SSEConnection
from beamish.web._sse_log import SSEEvent
from beamish.web._token import Token, TokenError
from beamish.web._transport import serve_socket

__all__ = [
    "Broadcast",
    "Channel",
    "ChannelError",
    "Endpoint",
    "EndpointServer",
    "EventStream",
    "EventStreamInfo",
    "GranianEndpointServer",
    "ListenError",
    "Message",
    "Presence",
    "RouteError",
    "RouteScope",
    "Router",
    "SSEConnection",
    "SSEEvent",
    "Serializer",
    "SerializerError",
    "Socket",
    "SocketOptions",
    "SocketRef",
    "SocketState",
    "Token",
    "TokenError",
    "V2JSONSerializer",
    "broadcast",
    "broadcast_from",
    "local_broadcast",
    "request_id",
    "serve_socket",
]


publish(globals(), __all__, __name__)
del publish
