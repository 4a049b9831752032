"""The classroom hub: the Flask application and everything that runs on the appliance."""

__version__ = "0.1.0"
API_MAJOR = 1
