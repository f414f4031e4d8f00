"""CLI command modules; each registers its commands on ``regress.cli.app.app``."""
