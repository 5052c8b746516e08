"""Checks eventgate's Helm chart as rendered by tools/helm-render (scripts/helm-check.sh).

Each case renders the chart with some values, validates every manifest against the
Kubernetes schemas (kubernetes-validate, offline), and asserts what the values promise.
"""

import json
import subprocess
import sys
import tempfile

import kubernetes_validate
import yaml

CHART = "deploy/helm/eventgate"
RENDER = sys.argv[1]  # the built helm-render binary
KUBERNETES = "1.30.0"

SECRETS = {"secret": {"databaseUrl": "postgres://eventgate@db/eventgate",
                      "platformKey": "p" * 40, "secretsKey": "c2VjcmV0cy1rZXktMzItYnl0ZXMtbG9uZy1lbm91Z2g="}}


def merge(base, override):
    out = dict(base)
    for key, value in override.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def render(overrides):
    with open(f"{CHART}/values.yaml") as f:
        values = merge(yaml.safe_load(f), overrides)
    with open(f"{CHART}/Chart.yaml") as f:
        chart = yaml.safe_load(f)
    with tempfile.NamedTemporaryFile("w", suffix=".json") as v, tempfile.NamedTemporaryFile("w", suffix=".json") as c:
        json.dump(values, v)
        json.dump(chart, c)
        v.flush()
        c.flush()
        result = subprocess.run([RENDER, CHART, "rel", v.name, c.name], capture_output=True, text=True)
    if result.returncode != 0:
        return None, result.stderr.strip()
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            # A CRD (the ServiceMonitor): not in the Kubernetes schemas; checked below.
            assert doc["apiVersion"] == "monitoring.coreos.com/v1", doc["apiVersion"]
    return docs, None


def of_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def env(container):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


failures = []


def case(name):
    def run(check):
        try:
            check()
            print(f"ok   {name}")
        except Exception as err:  # noqa: BLE001 - report every case, then fail
            failures.append(name)
            print(f"FAIL {name}: {err!r}")
    return run


@case("defaults: one relay Deployment, Service, PDB, Secret and migration Job; valid manifests")
def _():
    docs, err = render(SECRETS)
    assert err is None, err
    assert sorted(d["kind"] for d in docs) == ["Deployment", "Job", "PodDisruptionBudget", "Secret", "Service"], [d["kind"] for d in docs]
    deployment = of_kind(docs, "Deployment")[0]
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert env(container)["EVENTGATE_RELAY"] == "true"
    assert env(container)["DATABASE_URL"] == {"secretKeyRef": {"name": "rel-eventgate", "key": "DATABASE_URL"}}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["image"] == "eventgate:0.1.0"
    job = of_kind(docs, "Job")[0]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    secret = of_kind(docs, "Secret")[0]
    # The Secret is a hook that runs before the migration job, which needs it.
    assert int(secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
    service = of_kind(docs, "Service")[0]
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "eventgate", "app.kubernetes.io/instance": "rel"}


@case("apiOnly.replicas adds a Deployment with EVENTGATE_RELAY=false behind the same Service")
def _():
    docs, err = render(merge(SECRETS, {"apiOnly": {"replicas": 3}}))
    assert err is None, err
    deployments = {d["metadata"]["name"]: d for d in of_kind(docs, "Deployment")}
    api = deployments["rel-eventgate-api"]
    assert api["spec"]["replicas"] == 3
    assert env(api["spec"]["template"]["spec"]["containers"][0])["EVENTGATE_RELAY"] == "false"
    service = of_kind(docs, "Service")[0]
    labels = api["spec"]["template"]["metadata"]["labels"]
    assert all(labels[k] == v for k, v in service["spec"]["selector"].items())


@case("existingSecret: no Secret made, every reference names the existing one; extra env kept")
def _():
    docs, err = render({"secret": {"existingSecret": "bank-eventgate"},
                        "env": [{"name": "EVENTGATE_DESTINATION_ALLOW", "value": "10.20.0.0/16"}]})
    assert err is None, err
    assert not of_kind(docs, "Secret")
    container = of_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    variables = env(container)
    assert variables["EVENTGATE_PLATFORM_KEY"]["secretKeyRef"]["name"] == "bank-eventgate"
    assert variables["EVENTGATE_DESTINATION_ALLOW"] == "10.20.0.0/16"


@case("serviceMonitor.enabled adds a ServiceMonitor sending the platform key to /metrics")
def _():
    docs, err = render(merge(SECRETS, {"serviceMonitor": {"enabled": True}}))
    assert err is None, err
    monitor = of_kind(docs, "ServiceMonitor")[0]
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["path"] == "/metrics"
    assert endpoint["authorization"]["credentials"] == {"name": "rel-eventgate", "key": "EVENTGATE_PLATFORM_KEY"}


@case("without secrets or an existing Secret the chart refuses to render, saying what is missing")
def _():
    docs, err = render({})
    assert docs is None and "secret.databaseUrl" in err, err


if failures:
    sys.exit(f"{len(failures)} chart check(s) failed")
