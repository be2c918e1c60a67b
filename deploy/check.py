"""Static checks of the deployment files (no Docker engine or cluster needed).

    .venv/bin/python deploy/check.py

- services/<name>/Dockerfile are in sync with deploy/docker/Dockerfile (render.py --check);
- docker-compose.yml and every deploy/k8s manifest parse; the topics that compose and the k8s Job
  create are exactly dialguard.events.topics.TOPICS, with the same partition counts;
- each compose service has the contract's settings (CONTRACT §1), its own database role, REDIS_URL
  only for suppression, OUTBOUND_TM_URL_TEMPLATE only for outbound-sync, and waits for its
  dependencies; each Deployment has 2 replicas, the probes, resources, a non-root read-only
  container and only its own secret keys; the roles SQL creates every role and schema.
Exit 1 with a list of problems, else 0.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from dialguard.events.topics import TOPICS

ROOT = Path(__file__).resolve().parents[1]
SERVICES = {"suppression": 8001, "contact-list": 8002, "lead-action": 8003, "outbound-sync": 8004}
COMMON_ENV = {
    "KAFKA_BOOTSTRAP_SERVERS",
    "DATABASE_URL",
    "AUTH_JWT_SECRET",
    "HTTP_PORT",
    "LOG_LEVEL",
    "DEFAULT_PHONE_REGION",
}
problems: list[str] = []


def expect(ok: bool, message: str) -> None:
    if not ok:
        problems.append(message)


def topics_in(script: str) -> dict[str, int]:
    """The name:partitions pairs of a topic-creation script."""
    return {m[0]: int(m[1]) for m in re.findall(r"\b((?:[a-z-]+\.)+v1):(\d+)\b", script)}


def check_compose() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    svcs: dict[str, Any] = compose["services"]
    script = svcs["topics"]["command"][0]
    expect(topics_in(script) == TOPICS, f"compose topics {topics_in(script)} != {TOPICS}")
    expect(svcs["kafka"]["image"] == "apache/kafka:3.8.0", "kafka image")
    expect(svcs["postgres"]["image"] == "postgres:16", "postgres image")
    expect("redis-stack-server" in svcs["redis"]["image"], "redis image must be Redis Stack")
    for name, port in SERVICES.items():
        svc, schema = svcs[name], name.replace("-", "_")
        env = svc["environment"]
        expect(set(env) >= COMMON_ENV, f"compose {name}: missing {COMMON_ENV - set(env)}")
        expect(str(env.get("HTTP_PORT")) == str(port), f"compose {name}: HTTP_PORT")
        expect(f"//dg_{schema}:" in env.get("DATABASE_URL", ""), f"compose {name}: DATABASE_URL role")
        expect(("REDIS_URL" in env) == (name == "suppression"), f"compose {name}: REDIS_URL")
        tm = "OUTBOUND_TM_URL_TEMPLATE" in env
        expect(tm == (name == "outbound-sync"), f"compose {name}: OUTBOUND_TM_URL_TEMPLATE")
        expect(svc["build"]["dockerfile"] == f"services/{name}/Dockerfile", f"compose {name}: dockerfile")
        expect(any(p.endswith(f":{port}:{port}") for p in svc["ports"]), f"compose {name}: port")
        deps = {k: v["condition"] for k, v in svc["depends_on"].items()}
        want = {"postgres": "service_healthy", "topics": "service_completed_successfully"}
        if name == "suppression":
            want["redis"] = "service_healthy"
        expect(deps == want, f"compose {name}: depends_on {deps}")
        expect("/health/ready" in svc["healthcheck"]["test"], f"compose {name}: healthcheck")


def check_k8s() -> None:
    k8s = ROOT / "deploy" / "k8s"
    docs = {p.name: list(yaml.safe_load_all(p.read_text())) for p in k8s.rglob("*.yaml")}
    kustomization = docs["kustomization.yaml"][0]
    wanted = ["configmap.yaml", *(f"{n}.yaml" for n in SERVICES)]
    expect(sorted(kustomization["resources"]) == sorted(wanted), "kustomization resources")
    job = docs["create-topics.yaml"][0]["spec"]["template"]["spec"]["containers"][0]
    expect(topics_in(job["args"][0]) == TOPICS, "k8s topics job != TOPICS")
    for name, port in SERVICES.items():
        kinds = {d["kind"]: d for d in docs[f"{name}.yaml"]}
        dep, svc = kinds["Deployment"], kinds["Service"]
        pod = dep["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        expect(dep["spec"]["replicas"] == 2, f"k8s {name}: replicas")
        expect(c["readinessProbe"]["httpGet"]["path"] == "/health/ready", f"k8s {name}: readiness")
        expect(c["livenessProbe"]["httpGet"]["path"] == "/health/live", f"k8s {name}: liveness")
        expect({"requests", "limits"} <= set(c["resources"]), f"k8s {name}: resources")
        expect(c["securityContext"]["readOnlyRootFilesystem"] is True, f"k8s {name}: read-only fs")
        expect(pod["securityContext"]["runAsNonRoot"] is True, f"k8s {name}: non-root")
        expect(c["envFrom"] == [{"configMapRef": {"name": "dialguard-config"}}], f"k8s {name}: envFrom")
        keys = {
            e["name"]: e["valueFrom"]["secretKeyRef"]["key"]
            for e in c["env"]
            if "valueFrom" in e and e["valueFrom"]["secretKeyRef"]["name"] == "dialguard-secrets"
        }
        want = {"AUTH_JWT_SECRET": "AUTH_JWT_SECRET"}
        want["DATABASE_URL"] = name.upper().replace("-", "_") + "_DATABASE_URL"
        if name == "suppression":
            want["REDIS_URL"] = "REDIS_URL"
        expect(keys == want, f"k8s {name}: secret keys {keys}")
        expect(c["ports"][0]["containerPort"] == port, f"k8s {name}: containerPort")
        expect(svc["spec"]["ports"][0]["port"] == port, f"k8s {name}: Service port")


def check_roles_sql() -> None:
    sql = (ROOT / "deploy" / "compose" / "initdb" / "01-roles.sql").read_text()
    for name in SERVICES:
        schema = name.replace("-", "_")
        expect(f"AUTHORIZATION dg_{schema}" in sql, f"roles SQL: schema {schema} owned by dg_{schema}")
        expect(f"SET search_path = {schema}" in sql, f"roles SQL: search_path of dg_{schema}")


def main() -> int:
    render = subprocess.run([sys.executable, str(ROOT / "deploy/docker/render.py"), "--check"], check=False)
    expect(render.returncode == 0, "services/*/Dockerfile out of date")
    check_compose()
    check_k8s()
    check_roles_sql()
    for problem in problems:
        print(f"deploy check: {problem}", file=sys.stderr)
    print("deploy check: " + ("FAILED" if problems else "ok"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
