"""Process runtime services of the appliance: service-manager integration (sd_notify)."""
