"""CLI command modules; each registers its commands on ``regress.cli_app.app``."""
