"""mDNS/DNS-SD discovery of the classroom hub (RFC 6762/6763).

The hub side: :class:`HubAdvertiser` announces ``_classroom-hub._tcp`` and ``_http._tcp``
and keeps the announcement true when the host's addresses change. The record layout
(service types, TXT keys) lives in :mod:`edge.discovery.records`, shared with the tablet
client.
"""

from edge.discovery.advertiser import HubAdvertiser
from edge.discovery.records import HTTP_SERVICE_TYPE, SERVICE_TYPE, TXT_VERSION, HubTxt

__all__ = [
    "HTTP_SERVICE_TYPE",
    "SERVICE_TYPE",
    "TXT_VERSION",
    "HubAdvertiser",
    "HubTxt",
]
