"""The appliance's sync agent (``classroom-sync``): uplink of the outbox, downlink of notices."""
