"""Hosts are managed by their agents (heartbeats); the admin site is not installed yet."""
