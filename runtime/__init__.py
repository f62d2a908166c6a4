"""Berth's host-side runtime: images, containers, volumes and networks on one Linux host.

A plain Python package with no Django import, used by the `berth-runtime` command and the host
agent. State lives under one root directory (default /var/lib/berth).
"""
