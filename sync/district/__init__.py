"""The district side: the reference ingest service and the publisher. Runs in the
district, not on the appliance: imports nothing from ``edge``."""
