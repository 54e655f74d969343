"""The decision service (``promptline serve --socket PATH``): protocol, server and client."""

from ._client import ServiceClient, ServiceError
from ._protocol import METHODS, PROTOCOL_VERSION, ProtocolError, schema
from ._server import DecisionService, peer_uid

__all__ = ["DecisionService", "METHODS", "PROTOCOL_VERSION", "ProtocolError", "ServiceClient", "ServiceError",
           "peer_uid", "schema"]
