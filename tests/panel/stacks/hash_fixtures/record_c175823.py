"""How resolved_at_c175823.json was made: run against an export of commit c175823 (the code
before the one container spec), never against newer code, e.g.

    git archive c175823 | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old .venv/bin/python tests/panel/stacks/hash_fixtures/record_c175823.py \
        /tmp/old c175823 > tests/panel/stacks/hash_fixtures/resolved_at_c175823.json
"""
import json
import os
import sys
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "panel.settings")
os.environ.setdefault("BERTH_STATE_DIR", "/tmp/specfix/state")
django.setup()
from panel.stacks.compose import container_spec_hash, service_spec_hash  # noqa: E402
from panel.stacks.resolve import replica_hash, resolve  # noqa: E402

root = Path(sys.argv[1])
CASES = root / "tests/panel/stacks/compose_cases"
ENV = {"HTTP_PORT": "8081", "REPLICAS": "2", "HOST": "api.example.com",
       "FROM_STACK": "from-the-stack"}
LEGACY = """
services:
  web:
    image: busybox
    command: ["httpd", "-f", "-p", "8080"]
    user: "1000:1000"
    working_dir: /tmp
    hostname: legacy-web
    read_only: true
    stop_signal: SIGTERM
    stop_grace_period: 3s
    init: true
    restart: unless-stopped
    environment: {MODE: legacy, TOKEN: "${TOKEN}"}
    labels: {com.example.role: web}
    healthcheck: {test: ["CMD-SHELL", "true"], interval: 1s, retries: 3}
    deploy:
      replicas: 2
      resources: {limits: {memory: 64M, cpus: "0.5", pids: 100}}
  worker:
    image: busybox
    command: ["sleep", "600"]
    networks: [back]
    volumes: ["data:/data"]
networks:
  back: {}
volumes:
  data: {}
"""
cases = []
for path in sorted(CASES.glob("*.yml")):
    name = None if path.name == "external_and_ipam.yml" else "shop"
    cases.append({"file": path.name, "stack": name or "shop", "compose": path.read_text(),
                  "environment": ENV, "secrets": [],
                  "allow_bind_mounts": path.name == "bind_mounts.yml"})
cases.append({"file": "legacy_secrets", "stack": "legacy", "compose": LEGACY, "environment": {},
              "secrets": ["TOKEN"], "allow_bind_mounts": False})
cases.append({"file": "legacy_deploy", "stack": "legacy", "compose": LEGACY,
              "environment": {"TOKEN": "plain"}, "secrets": [], "allow_bind_mounts": False})
out = []
for case in cases:
    spec = resolve(case["stack"], case["compose"], case["environment"],
                   {k: "s3cret" for k in case["secrets"]},
                   allow_bind_mounts=case["allow_bind_mounts"])
    digests = {k: "0" * 32 for k in case["secrets"]}
    services = {}
    for sname, svc in spec.services.items():
        services[sname] = {
            "container_spec_hash": container_spec_hash(svc),
            "service_spec_hash": service_spec_hash(svc),
            "replica_hash": replica_hash(spec, sname, digests, ""),
            "replica_hash_pinned": replica_hash(spec, sname, digests, "sha256:" + "ab" * 32),
        }
    out.append({**case, "secret_digests": digests, "spec": spec.to_dict(), "services": services})
commit = sys.argv[2]
print(json.dumps({"made_by": commit, "cases": out}, indent=1, sort_keys=True))
