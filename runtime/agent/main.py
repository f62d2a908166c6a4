"""`berth-agent`: the host agent command.

    berth-agent --host-name NAME [--state-dir DIR] [--redis-url URL] [--labels k=v,…]
                [--concurrency N]

Consumes queue `host.NAME` and reports to `control` (runtime.protocol). Needs only Redis.
SIGTERM or Ctrl-C stops it cleanly: running tasks finish; containers keep running under conmon.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import re
import signal
import sys
import warnings
from pathlib import Path

from runtime.errors import BerthError

DEFAULT_STATE_DIR = "/var/lib/berth"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
HOST_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")


def parse_labels(text: str) -> dict[str, str]:
    """`k=v,k2=v2` → dict; raises ValueError naming the bad entry."""
    labels: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = entry.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"invalid --labels entry {entry!r}: use key=value[,key=value…]")
        labels[key.strip()] = value.strip()
    return labels


def _host_name(text: str) -> str:
    if not HOST_NAME.match(text):
        raise argparse.ArgumentTypeError(
            f"invalid host name {text!r}: use 1-63 of [a-zA-Z0-9_.-], starting with a letter or "
            "digit")
    return text


def _labels(text: str) -> dict[str, str]:
    try:
        return parse_labels(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="berth-agent", description="Berth host agent: applies the panel's work to this host.")
    parser.add_argument("--host-name", required=True, type=_host_name,
                        help="this host's name; the agent consumes queue host.NAME")
    parser.add_argument("--state-dir", default=os.environ.get("BERTH_STATE_DIR",
                                                              DEFAULT_STATE_DIR),
                        help=f"the runtime root (default {DEFAULT_STATE_DIR})")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", DEFAULT_REDIS_URL),
                        help=f"broker and result backend (default $REDIS_URL or "
                             f"{DEFAULT_REDIS_URL})")
    parser.add_argument("--labels", type=_labels, default={},
                        help="host labels for placement constraints: k=v,k2=v2")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="tasks run at the same time (default 4)")
    parser.add_argument("--heartbeat-interval", type=_positive, default=5.0,
                        help="seconds between heartbeats (default 5)")
    parser.add_argument("--snapshot-interval", type=_positive, default=30.0,
                        help="seconds between full snapshots (default 30)")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `berth-agent`."""
    args = build_parser().parse_args(argv)
    if args.concurrency < 1:
        print("berth-agent: --concurrency must be 1 or more", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # `kill -USR2 <agent>` writes every thread's stack to the log: where a stuck task waits
    # (Celery takes USR1 for its own, longer dump)
    faulthandler.register(signal.SIGUSR2, all_threads=True)
    # The agent runs as root by design (it drives runc); it accepts JSON only, never pickle.
    from celery.exceptions import SecurityWarning

    warnings.filterwarnings("ignore", category=SecurityWarning)
    from runtime.agent.service import Agent

    Path(args.state_dir).mkdir(parents=True, exist_ok=True)
    agent = Agent(args.host_name, Path(args.state_dir), args.redis_url, args.labels,
                  concurrency=args.concurrency, heartbeat_interval=args.heartbeat_interval,
                  snapshot_interval=args.snapshot_interval)
    try:
        agent.start()
    except BerthError as exc:
        print(f"berth-agent: {exc}", file=sys.stderr)
        return 1
    from runtime.agent.logship import LogShipper  # logs and live stats into Redis (panel/live)

    shipper = LogShipper(agent.host, args.redis_url, args.host_name)
    shipper.start()
    try:
        return agent.run_worker(args.log_level)
    finally:
        shipper.stop()
        agent.stop()


if __name__ == "__main__":
    sys.exit(main())
