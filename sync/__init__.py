"""Hub <-> district synchronisation.

- ``sync.wire``: the formats on the wire (topics, batch envelope, acks, notices), written once.
- ``sync.agent``: the appliance's ``classroom-sync`` agent (reads the outbox, fills the inbox).
- ``sync.district``: the district side (``district-ingest``, ``district-publish``); imports nothing from ``edge``.
- ``sync/mosquitto``: the district broker's configuration (TLS, per-hub identities, ACL).
"""
