"""The host agent: a Celery worker (Redis only, no Django) that applies the panel's wishes to this
host's runtime and reports what happens back to the control queue.

Modules, one job each:
- `celery_app`: the Celery app built from a Redis URL, the control-queue client, redelivery of
  messages a killed agent left unacknowledged;
- `specs`: the protocol's container spec <-> the runtime's RunOptions;
- `inventory`: what a heartbeat says about the host;
- `reporter`: heartbeats, container events (a diff of the runtime's records) and snapshots;
- `tasks`: the `berth.agent.*` tasks;
- `service`: the Agent object that ties host, reporter, supervisor and tasks together;
- `main`: the `berth-agent` command.

Wire formats are defined in `runtime.protocol`.
"""

AGENT_VERSION = "0.1.0"
