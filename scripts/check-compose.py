#!/usr/bin/env python3
"""Checks docker/compose.yaml against what the code accepts, without running
it (`make test`; `make compose-test` runs it): every service runs a role the
entrypoint knows; every BUCKETFS_* variable set is one a binary reads (its
`--help` shows `[env: NAME=`) or one the entrypoint documents; the storage
nodes have their own ids, addresses and volumes; the services that keep
running have health checks; the client gets /dev/fuse and SYS_ADMIN; and
docker/prometheus.yml scrapes services and ports the compose file has.

Usage: check-compose.py BIN_DIR (where router, storage-node and bucketfs are)."""

import pathlib
import re
import subprocess
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
HELP_COMMANDS = [
    ["router", "serve", "--help"],
    ["router", "key", "--help"],
    ["router", "status", "--help"],
    ["storage-node", "--help"],
    ["bucketfs", "mount", "--help"],
]


def fail(problems):
    for p in problems:
        print(f"docker/compose.yaml: {p}", file=sys.stderr)
    sys.exit(1)


def env_names_in_help(bin_dir):
    names = set()
    for cmd in HELP_COMMANDS:
        out = subprocess.run(
            [str(bin_dir / cmd[0]), *cmd[1:]], capture_output=True, text=True, check=True
        ).stdout
        names |= set(re.findall(r"\[env: (\w+)=", out))
    return names


def entrypoint_facts():
    """The roles the entrypoint's `case` runs, and the variables its header documents."""
    text = (DOCKER / "entrypoint.sh").read_text()
    roles = set(re.findall(r"^\s+(\w+)\) (?:run_\w+|make_secrets)", text, re.M))
    header = text.split("set -euo pipefail")[0]
    documented = set(re.findall(r"#\s+(BUCKETFS_\w+)", header))
    return roles, documented


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    bin_dir = pathlib.Path(sys.argv[1])
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    known_env = env_names_in_help(bin_dir)
    roles, documented = entrypoint_facts()
    problems = []

    want = {"postgres", "zookeeper", "haproxy", "router1", "router2", "node1", "node2", "node3", "client"}
    problems += [f"no service {s}" for s in sorted(want - set(services))]

    for name, svc in services.items():
        role = (svc.get("command") or ["help"])[0]
        if role not in roles:
            problems.append(f"{name} runs role {role!r}, which docker/entrypoint.sh does not know")
        for var in (svc.get("environment") or {}):
            if var.startswith("BUCKETFS_") and var not in known_env | documented:
                problems.append(f"{name} sets {var}, which no binary reads and the entrypoint does not document")
        one_shot = svc.get("restart") in ("no", "on-failure")
        if not one_shot and "healthcheck" not in svc:
            problems.append(f"{name} runs for good but has no healthcheck")

    nodes = {n: s for n, s in services.items() if (s.get("command") or [""])[0] == "node"}
    if len(nodes) < 3:
        problems.append(f"{len(nodes)} storage nodes; replication needs 3")
    seen = {"id": {}, "volume": {}}
    for name, svc in nodes.items():
        env = svc.get("environment") or {}
        node_id, advertise = env.get("BUCKETFS_NODE_ID"), env.get("BUCKETFS_ADVERTISE", "")
        if advertise.split(":")[0] != svc.get("hostname", name):
            problems.append(f"{name} advertises {advertise!r}, not its own name")
        data = [v for v in svc.get("volumes", []) if v.split(":")[1].startswith("/var/lib/bucketfs")]
        for key, value in (("id", node_id), ("volume", data[0] if data else None)):
            if value is None:
                problems.append(f"{name} has no {key}")
            elif value in seen[key]:
                problems.append(f"{name} shares its {key} {value!r} with {seen[key][value]}")
            else:
                seen[key][value] = name

    client = services.get("client", {})
    if "/dev/fuse" not in client.get("devices", []) or "SYS_ADMIN" not in client.get("cap_add", []):
        problems.append("the client needs /dev/fuse and the SYS_ADMIN capability to mount")

    # Prometheus scrapes what compose runs, on the ports the services serve.
    ports = {}
    for name, svc in services.items():
        listen = (svc.get("environment") or {}).get("BUCKETFS_LISTEN")
        if listen:
            ports[name] = listen.rsplit(":", 1)[1]
        command = svc.get("command") or []
        if "--metrics" in command:
            ports[name] = command[command.index("--metrics") + 1].rsplit(":", 1)[1]
    prometheus = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    for job in prometheus["scrape_configs"]:
        for target in job["static_configs"][0]["targets"]:
            host, port = target.rsplit(":", 1)
            if ports.get(host) != port:
                problems.append(f"prometheus.yml scrapes {target}; compose serves {host} on {ports.get(host)}")

    if problems:
        fail(problems)
    print(f"docker/compose.yaml: {len(services)} services check out")


main()
