#!/usr/bin/env python3
"""Checks the Helm chart and the Kubernetes examples without a cluster.

- Renders deploy/helm/airlock with Helm's own engine (PyPI helm-python-sdk) for each
  profile, and the example agent chart that includes the broker sidecar; refused value
  combinations must fail to render with their message.
- Validates every rendered object against the Kubernetes 1.30 schemas
  (kubernetes-validate, strict: unknown fields fail); the ServiceMonitor (a CRD) by shape.
- Asserts the security properties on every container and the chart's own invariants
  (probes, selectors, config, no Secret objects, no init container in the server pod,
  the connection string as a mounted file, each pod's address and audit directory from
  the downward API, resolved as the kubelet does).
- Runs checkov once over everything rendered; a failed check fails unless
  deploy/test/checkov-skips.txt names it with a reason.
- Validates examples/kubernetes/*.yaml: ESO objects against deploy/schemas/eso, the rest
  against the Kubernetes schemas.
- With --airlock BIN: starts the server on every profile's config with the container's
  environment (every key and variable is checked at start-up), runs examples/kubernetes/setup.sh twice against a dev server and checks
  that each ESO policy reaches its prefix and nothing else.

Exit status 0 when everything passed; otherwise every failure is printed.
"""

import argparse
import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from pathlib import Path

import helm_python as helm
import jsonschema
import kubernetes_validate
import yaml

import kubelet

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy/helm/airlock"
EXAMPLES = ROOT / "examples/kubernetes"
ESO_SCHEMAS = ROOT / "deploy/schemas/eso"
SKIPS = ROOT / "deploy/test/checkov-skips.txt"
KUBE_VERSION = "1.30.0"
NAMESPACE = "airlock"
RELEASE = "airlock"

KEYFILE = {"seal": {"type": "keyFile", "keyFile": {"secretName": "airlock-unseal"}}}
# name -> values files of the chart and overrides, applied in order.
PROFILES = {
    "default": [],
    "single": ["values-single.yaml"],
    "ha": ["values-ha.yaml"],
    "tls": ["values-tls.yaml"],
    "servicemonitor": [
        "values-tls.yaml",
        {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"},
                            "tokenSecret": {"name": "airlock-metrics-token"}}},
    ],
    # HA without TLS, Shamir seal, PostgreSQL with a CA and a client certificate, IPv6
    # pods, a shared audit claim, no Kubernetes auth, everything optional switched off.
    "ha-minimal": [
        {"profile": "ha", "replicas": 2,
         "config": {"podIPFamily": "IPv6"},
         "storage": {"backend": "postgresql", "postgresql": {
             "connectionUrlSecret": {"name": "pg"},
             "tls": {"caSecret": {"name": "pg-ca"}, "clientCertSecret": {"name": "pg-client"}}}},
         "audit": {"existingClaim": "airlock-audit"},
         "kubernetesAuth": {"enabled": False},
         "podDisruptionBudget": {"enabled": False},
         "networkPolicy": {"enabled": False}},
    ],
    # Every optional setting of Airlock's config set, so the binary can check each key.
    "tuned": [
        "values-single.yaml",
        {"config": {"apiAddr": "https://airlock.example.com", "unauthenticatedMetricsAccess": True,
                    "defaultLeaseTtl": 3600, "maxLeaseTtl": 86400,
                    "listener": {"maxRequestSize": 33554432, "maxUnauthenticatedRequestSize": 65536,
                                 "maxConnections": 2048, "maxConnectionsPerAddress": 0,
                                 "httpIdleTimeout": "90s", "httpReadHeaderTimeout": 5, "httpReadTimeout": "15s"},
                    "auth": {"loginRate": 100, "loginBurst": 200, "failedLoginRate": 0.5, "failedLoginBurst": 10},
                    "events": {"maxEvents": 5000, "maxAge": 3600}},
         "audit": {"fsync": True}},
    ],
    "single-postgresql": [
        KEYFILE,
        {"storage": {"backend": "postgresql", "postgresql": {"connectionUrlSecret": {"name": "pg"}}},
         "audit": {"persistence": {"enabled": False}}},
    ],
}
# Values that must not render, and a piece of the message each must fail with.
REFUSED = [
    ({"profile": "ha"}, "profile=ha needs storage.backend=postgresql"),
    ({"profile": "ha", "storage": {"backend": "sqlite"}}, "SQLite serves one node"),
    ({"seal": {"type": "keyFile"}}, "seal.type=keyFile needs seal.keyFile.secretName"),
    ({"tls": {"enabled": True}}, "tls.enabled=true needs tls.secretName"),
    ({"storage": {"backend": "postgresql"}}, "needs storage.postgresql.connectionUrlSecret.name"),
    ({"storage": {"backend": "postgresql", "postgresql": {"connectionUrlSecret": {"name": "pg"},
                                                          "tls": {"sslmode": "verify-full"}}}},
     "storage.postgresql.tls.sslmode is gone: Airlock takes PostgreSQL's TLS options only from the connection string"),
    ({"storage": {"backend": "postgresql", "postgresql": {"connectionUrlSecret": {"name": "pg"},
                                                          "tls": {"systemRoots": True}}}},
     "storage.postgresql.tls.systemRoots is gone"),
    ({"config": {"podIPFamily": "ipv6"}}, 'config.podIPFamily must be "IPv4" or "IPv6"'),
    ({"serviceMonitor": {"enabled": True}}, "sys/metrics needs a token"),
    ({"profile": "cluster"}, 'profile must be "single" or "ha"'),
]

failures = []


def fail(what):
    failures.append(what)
    print(f"FAIL: {what}")


def merge(a, b):
    """Helm's values merge: maps merge key by key, anything else replaces."""
    out = copy.deepcopy(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def profile_values(parts):
    vals = {}
    for p in parts:
        vals = merge(vals, p if isinstance(p, dict) else yaml.safe_load((CHART / p).read_text()))
    return vals


def render(chart_dir, values, name=RELEASE, namespace=NAMESPACE):
    """Template path -> rendered text (NOTES.txt included)."""
    with helm.Chart.load(str(chart_dir)) as c:
        return c.render(values=values, name=name, namespace=namespace, is_install=True)


def objects(rendered):
    out = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                out.append((path, doc))
    return out


def oid(o):
    return f"{o['kind']}/{o.get('metadata', {}).get('name', '?')}"


# ---------------------------------------------------------------- Kubernetes schemas


def kube_validate(where, o):
    try:
        kubernetes_validate.validate(o, KUBE_VERSION, strict=True)
        return True
    except kubernetes_validate.ValidationError as e:
        path = "/".join(str(p) for p in e.path)
        fail(f"{where}: {oid(o)} does not validate against Kubernetes {KUBE_VERSION}: {path}: {e.message}")
    except kubernetes_validate.SchemaNotFoundError as e:
        fail(f"{where}: {oid(o)}: {e.message}")
    return False


def check_service_monitor(where, o, pods_labels):
    s = o.get("spec", {})
    ok = o.get("apiVersion") == "monitoring.coreos.com/v1"
    ep = (s.get("endpoints") or [{}])[0]
    ok &= ep.get("port") == "api" and ep.get("path") == "/v1/sys/metrics"
    ok &= ep.get("params") == {"format": ["prometheus"]}
    ok &= bool(s.get("selector", {}).get("matchLabels")) and subset(s["selector"]["matchLabels"], pods_labels)
    ok &= s.get("namespaceSelector", {}).get("matchNames") == [NAMESPACE]
    auth = ep.get("authorization", {})
    ok &= auth.get("type") == "Bearer" and bool(auth.get("credentials", {}).get("name"))
    if ep.get("scheme") == "https":
        ok &= bool(ep.get("tlsConfig", {}).get("ca", {}).get("secret", {}).get("name"))
    if not ok:
        fail(f"{where}: ServiceMonitor has not the expected shape: {json.dumps(s)}")


# ------------------------------------------------------------------ security / chart


def subset(small, big):
    return all(big.get(k) == v for k, v in small.items())


def pod_spec(o):
    if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return o["spec"]["template"]
    return None


def check_security(where, o, workload=False):
    """The hardening every container of the chart has. `workload`: an example application
    (the seed's pattern hands it secrets as environment variables, which is its choice)."""
    tpl = pod_spec(o)
    if tpl is None:
        return
    spec = tpl["spec"]
    psc = spec.get("securityContext", {})
    name = oid(o)
    if spec.get("automountServiceAccountToken") is not False:
        fail(f"{where}: {name}: automountServiceAccountToken is not false")
    for k in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(k):
            fail(f"{where}: {name}: {k}")
    for c in spec.get("initContainers", []) + spec.get("containers", []):
        cn = f"{name} container {c['name']}"
        sc = c.get("securityContext", {})

        def eff(k):
            return sc.get(k, psc.get(k))

        if eff("runAsNonRoot") is not True:
            fail(f"{where}: {cn}: runAsNonRoot is not true")
        uid = eff("runAsUser")
        if not isinstance(uid, int) or uid == 0:
            fail(f"{where}: {cn}: no fixed non-root runAsUser ({uid!r})")
        if sc.get("readOnlyRootFilesystem") is not True:
            fail(f"{where}: {cn}: readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            fail(f"{where}: {cn}: allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            fail(f"{where}: {cn}: privileged")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []) or caps.get("add"):
            fail(f"{where}: {cn}: capabilities are not drop [ALL] without add")
        if (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            fail(f"{where}: {cn}: seccompProfile is not RuntimeDefault")
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if r not in res.get(kind, {}):
                    fail(f"{where}: {cn}: no {kind}.{r}")
        image = c.get("image", "")
        if image.endswith(":latest") or (":" not in image.split("/")[-1] and "@" not in image):
            fail(f"{where}: {cn}: image {image!r} is not pinned by tag or digest")
        for e in [] if workload else c.get("env", []):
            if "secretKeyRef" in e.get("valueFrom", {}):
                fail(f"{where}: {cn}: secret in environment variable {e['name']} (mount it as a file)")


def check_server(profile, objs):
    """The chart's own invariants, for one profile."""
    by_kind = {}
    for _, o in objs:
        by_kind.setdefault(o["kind"], []).append(o)
    if "Secret" in by_kind:
        fail(f"{profile}: the chart renders a Secret (it must only reference them)")
    workloads = by_kind.get("StatefulSet", []) + by_kind.get("Deployment", [])
    if len(workloads) != 1:
        fail(f"{profile}: expected exactly one StatefulSet or Deployment, got {len(workloads)}")
        return None
    w = workloads[0]
    vals = profile_values(PROFILES[profile])
    ha = vals.get("profile") == "ha"
    if (w["kind"] == "Deployment") != ha:
        fail(f"{profile}: profile {'ha' if ha else 'single'} rendered a {w['kind']}")
    tpl = w["spec"]["template"]
    labels = tpl["metadata"]["labels"]
    if not subset(w["spec"]["selector"]["matchLabels"], labels):
        fail(f"{profile}: the workload's selector does not match its pods")
    for kind in ("Service", "PodDisruptionBudget", "NetworkPolicy"):
        for o in by_kind.get(kind, []):
            sel = o["spec"].get("selector") or o["spec"].get("podSelector")
            sel = sel.get("matchLabels", sel) if isinstance(sel, dict) else {}
            if not sel or not subset(sel, labels):
                fail(f"{profile}: {oid(o)} does not select the server pods")
    if w["kind"] == "StatefulSet":
        svc = [s for s in by_kind.get("Service", []) if s["metadata"]["name"] == w["spec"]["serviceName"]]
        if not svc or svc[0]["spec"].get("clusterIP") != "None":
            fail(f"{profile}: the StatefulSet's serviceName is not a headless Service")
    c = next(x for x in tpl["spec"]["containers"] if x["name"] == "airlock")
    if c.get("command") != ["airlock"] or c.get("args", [])[:2] != ["server", "--config"]:
        fail(f"{profile}: the server runs {c.get('command')} {c.get('args')}")
    if tpl["spec"].get("initContainers"):
        fail(f"{profile}: the server pod has init containers "
             f"{[i['name'] for i in tpl['spec']['initContainers']]}: the image has no shell to run them")
    # Liveness and startup only ask whether the listener accepts: no HTTP endpoint answers
    # without storage (sys/seal-status reads it), and a database outage must not restart pods.
    for name in ("livenessProbe", "startupProbe"):
        if c[name].get("tcpSocket") != {"port": "api"}:
            fail(f"{profile}: {name} is {c[name]}, not a TCP check of the API port")
    ready = c["readinessProbe"].get("httpGet", {})
    if not ready.get("path", "").startswith("/v1/sys/health") or ready.get("port") != "api":
        fail(f"{profile}: readiness is {c['readinessProbe']}, not sys/health on the API port")
    elif "code=" in ready["path"]:
        fail(f"{profile}: readiness {ready['path']} would send clients to a sealed or uninitialised node")
    scheme = "HTTPS" if vals.get("tls", {}).get("enabled") else "HTTP"
    if ready.get("scheme") != scheme:
        fail(f"{profile}: readiness uses {ready.get('scheme')}, the listener {scheme}")
    cms = [o for o in by_kind.get("ConfigMap", []) if o["metadata"]["name"].endswith("-config")]
    if len(cms) != 1:
        fail(f"{profile}: no config ConfigMap")
        return None
    text = cms[0]["data"]["airlock.toml"]
    try:
        cfg = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        fail(f"{profile}: the config is not TOML: {e}")
        return None
    if re.search(r"password|connection_url\s*=|BEGIN [A-Z ]*PRIVATE KEY", text):
        fail(f"{profile}: the ConfigMap holds secret material")
    pg = cfg["storage"]["backend"] == "postgresql"
    if ha and not pg:
        fail(f"{profile}: ha on {cfg['storage']['backend']}")
    if "connection_url" in cfg["storage"]:
        fail(f"{profile}: connection_url in the ConfigMap")
    if pg:
        check_connection_url_file(profile, vals, tpl["spec"], c, cfg)
    check_pod_identity(profile, vals, tpl["spec"], c, cfg, ha)
    if ("seal" in cfg) != (vals.get("seal", {}).get("type") == "keyFile"):
        fail(f"{profile}: [seal] is {'present' if 'seal' in cfg else 'missing'}")
    if cfg.get("audit") and not any(m["mountPath"] == "/var/log/airlock" for m in c["volumeMounts"]):
        fail(f"{profile}: the audit log is not on a mounted volume")
    if vals.get("tls", {}).get("enabled") and "tls_cert_file" not in cfg["listener"]:
        fail(f"{profile}: TLS enabled but the listener has no certificate")
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    for p in [cfg["listener"].get("tls_cert_file"), cfg.get("seal", {}).get("key_file"),
              cfg["storage"].get("path") if not pg else None]:
        if p and not any(p.startswith(m + "/") for m in mounts):
            fail(f"{profile}: {p} is on no mounted volume")
    return w


def volume_of(spec, c, path):
    """(volume, mount) holding the in-pod file `path`, or (None, None)."""
    mounts = sorted(c.get("volumeMounts", []), key=lambda m: len(m["mountPath"]), reverse=True)
    m = next((m for m in mounts if path.startswith(m["mountPath"].rstrip("/") + "/")), None)
    if m is None:
        return None, None
    return next((v for v in spec["volumes"] if v["name"] == m["name"]), None), m


def check_connection_url_file(profile, vals, spec, c, cfg):
    """The connection string: the Secret connectionUrlSecret mounted as the file the
    config's connection_url_file names, never an environment variable."""
    f = cfg["storage"].get("connection_url_file")
    want = vals["storage"]["postgresql"]["connectionUrlSecret"]
    if not f:
        fail(f"{profile}: PostgreSQL without connection_url_file")
        return
    v, m = volume_of(spec, c, f)
    sec = (v or {}).get("secret")
    if not sec or sec["secretName"] != want["name"]:
        fail(f"{profile}: connection_url_file {f} is not on the Secret {want['name']}")
        return
    rel = f[len(m["mountPath"].rstrip("/")) + 1:]
    items = {i["path"]: i["key"] for i in sec.get("items", [])}
    if items.get(rel) != want.get("key", "connection_url") or not m.get("readOnly"):
        fail(f"{profile}: {f} is not the Secret's key {want.get('key')} mounted read-only ({items})")
    if sec.get("defaultMode", 0o644) & 0o007:
        fail(f"{profile}: the connection string file is readable by others")
    if any(e["name"] == "AIRLOCK_PG_CONNECTION_URL" for e in c.get("env", [])):
        fail(f"{profile}: AIRLOCK_PG_CONNECTION_URL set: it would win over the mounted file")
    tls = vals["storage"]["postgresql"].get("tls", {})
    for name, files in ((tls.get("caSecret", {}).get("name"), ["ca.crt"]),
                        (tls.get("clientCertSecret", {}).get("name"), ["tls.crt", "tls.key"])):
        for fn in files if name else []:
            v, _ = volume_of(spec, c, f"/etc/airlock/pg-tls/{fn}")
            srcs = (v or {}).get("projected", {}).get("sources", [])
            if not any(s.get("secret", {}).get("name") == name and
                       any(i["path"] == fn for i in s["secret"].get("items", [])) for s in srcs):
                fail(f"{profile}: /etc/airlock/pg-tls/{fn} (the documented sslrootcert/sslcert/sslkey) "
                     f"is not mounted from Secret {name}")


POD_FIELDS = {"metadata.name": "airlock-7d9f8c6b5-x2kq4", "metadata.namespace": NAMESPACE,
              "status.podIP": "10.244.3.17"}


def check_pod_identity(profile, vals, spec, c, cfg, ha):
    """What differs between pods, resolved as the kubelet resolves it: the address each
    replica reports (AIRLOCK_API_ADDR/AIRLOCK_CLUSTER_ADDR from status.podIP, bracketed for
    IPv6) and each one's audit directory (subPathExpr from metadata.name)."""
    scheme = "https" if vals.get("tls", {}).get("enabled") else "http"
    port = vals.get("config", {}).get("port", 8200)
    ipv6 = vals.get("config", {}).get("podIPFamily") == "IPv6"
    for ip in ("fd00:10:244::7", "10.244.3.17") if ipv6 else ("10.244.3.17",):
        try:
            env = kubelet.container_env(c, {**POD_FIELDS, "status.podIP": ip})
        except kubelet.KubeletError as e:
            fail(f"{profile}: {e}")
            return
        fixed = vals.get("config", {}).get("apiAddr")
        if ha and not fixed:
            want = f"{scheme}://[{ip}]:{port}" if ipv6 else f"{scheme}://{ip}:{port}"
            for k in ("AIRLOCK_API_ADDR", "AIRLOCK_CLUSTER_ADDR"):
                if env.get(k) != want:
                    fail(f"{profile}: {k} resolves to {env.get(k)!r}, want {want!r}")
            if "api_addr" in cfg:
                fail(f"{profile}: api_addr in the config although each pod reports its own")
        else:
            if "AIRLOCK_API_ADDR" in env or "AIRLOCK_CLUSTER_ADDR" in env:
                fail(f"{profile}: AIRLOCK_API_ADDR set although api_addr is {cfg.get('api_addr')!r}")
            if not cfg.get("api_addr"):
                fail(f"{profile}: no api_addr")
    audit = next((m for m in c["volumeMounts"] if m["name"] == "audit"), None)
    if audit and ha:
        env = kubelet.container_env(c, POD_FIELDS)
        got = kubelet.expand(audit.get("subPathExpr", ""), env)
        if got != POD_FIELDS["metadata.name"]:
            fail(f"{profile}: the audit mount's subPathExpr gives {got!r}, not the pod's name")
    elif audit and (audit.get("subPathExpr") or audit.get("subPath")):
        fail(f"{profile}: the single pod's audit volume has a sub-path")


objs_of = {}


def config_text(profile):
    return next(o for _, o in objs_of[profile] if o["kind"] == "ConfigMap"
                and o["metadata"]["name"].endswith("-config"))["data"]["airlock.toml"]


def check_chart():
    counts = {"objects": 0, "kube_validated": 0}
    for name, parts in PROFILES.items():
        vals = profile_values(parts)
        try:
            out = render(CHART, vals)
        except helm.HelmError as e:
            fail(f"profile {name}: does not render: {e}")
            continue
        lint = helm.lint(str(CHART), vals, strict=True, namespace=NAMESPACE, kube_version=f"v{KUBE_VERSION}")
        for m in lint.get("messages", []):
            if m.get("severity", 0) >= 2:
                fail(f"profile {name}: helm lint: {m.get('path')}: {m.get('error')}")
        objs = objects(out)
        objs_of[name] = objs
        pods_labels = {}
        for _, o in objs:
            if pod_spec(o):
                pods_labels = o["spec"]["template"]["metadata"]["labels"]
        for path, o in objs:
            counts["objects"] += 1
            if o["kind"] == "ServiceMonitor":
                check_service_monitor(f"{name}: {path}", o, pods_labels)
            elif kube_validate(f"{name}: {path}", o):
                counts["kube_validated"] += 1
            check_security(f"{name}: {path}", o)
        check_server(name, objs)
        if name == "servicemonitor" and not any(o["kind"] == "ServiceMonitor" for _, o in objs):
            fail("servicemonitor: no ServiceMonitor rendered")
        print(f"profile {name}: {len(objs)} objects")
    for vals, msg in REFUSED:
        try:
            render(CHART, vals)
            fail(f"values {vals} rendered; expected a failure saying {msg!r}")
        except helm.HelmError as e:
            if msg not in str(e):
                fail(f"values {vals} failed with {e}, not with {msg!r}")
    print(f"refused value combinations: {len(REFUSED)} fail with their message")
    return counts


def check_agent_chart(counts):
    """The example agent chart with the airlock chart as its dependency: the broker helpers
    as another chart includes them."""
    with tempfile.TemporaryDirectory() as d:
        dst = Path(d) / "agent-chart"
        shutil.copytree(EXAMPLES / "agent-chart", dst)
        shutil.copytree(CHART, dst / "charts/airlock")
        vals = yaml.safe_load((dst / "values.yaml").read_text())
        for label, extra in [("broker-sidecar", {}),
                             ("broker-sidecar-token", {"airlock": {"brokerSidecar": {
                                 "auth": {"method": "tokenSecret", "tokenSecret": {"name": "broker-token"}},
                                 "profile": "[[binding]]\nname = \"x\"\n"}}})]:
            try:
                out = render(dst, merge(vals, extra), name="voice", namespace="voice")
            except helm.HelmError as e:
                fail(f"{label}: the agent chart does not render: {e}")
                continue
            objs = objects(out)
            objs_of[label] = objs
            for path, o in objs:
                counts["objects"] += 1
                if kube_validate(f"{label}: {path}", o):
                    counts["kube_validated"] += 1
                check_security(f"{label}: {path}", o)
                if o["kind"] in ("StatefulSet", "Service") or o["kind"].startswith("ClusterRole"):
                    fail(f"{label}: server.enabled=false still rendered {oid(o)}")
            dep = next((o for _, o in objs if o["kind"] == "Deployment"), None)
            if dep is None:
                fail(f"{label}: no agent Deployment")
                continue
            spec = dep["spec"]["template"]["spec"]
            names = [c["name"] for c in spec["containers"]]
            broker = next((c for c in spec["containers"] if c["name"] == "airlock-broker"), None)
            if broker is None or broker["args"][:2] != ["broker", "serve"]:
                fail(f"{label}: no `airlock broker serve` sidecar in {names}")
                continue
            if not any(a.startswith("--listen=127.0.0.1:") for a in broker["args"]):
                fail(f"{label}: the broker does not listen on loopback: {broker['args']}")
            vol_names = {v["name"] for v in spec["volumes"]}
            for c in spec.get("initContainers", []) + spec["containers"]:
                for m in c.get("volumeMounts", []):
                    if m["name"] not in vol_names:
                        fail(f"{label}: {c['name']} mounts the undefined volume {m['name']}")
            if extra and not any(o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-broker-profile")
                                 for _, o in objs):
                fail(f"{label}: no broker profile ConfigMap")
            print(f"profile {label}: {len(objs)} objects (example agent chart)")


# ------------------------------------------------------------------------ checkov


def run_checkov():
    skips = {}
    for n, line in enumerate(SKIPS.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if len(parts) < 2 or len(parts[1].strip()) < 10:
            fail(f"{SKIPS.name}:{n}: {parts[0]} has no reason")
            continue
        skips[parts[0]] = parts[1].strip()
    with tempfile.TemporaryDirectory() as d:
        n = 0
        for profile, objs in objs_of.items():
            (Path(d) / profile).mkdir()
            for path, o in objs:
                n += 1
                (Path(d) / profile / f"{n:03d}-{o['kind'].lower()}.yaml").write_text(yaml.safe_dump(o))
        r = subprocess.run([sys.executable, "-m", "checkov.main", "-d", d, "--framework", "kubernetes",
                            "-o", "json", "--skip-download", "--compact"],
                           capture_output=True, text=True, timeout=600,
                           env={**os.environ, "LOG_LEVEL": "ERROR"})
        try:
            reports = json.loads(r.stdout)
        except json.JSONDecodeError:
            fail(f"checkov produced no JSON (exit {r.returncode}): {r.stderr[-2000:]}")
            return None
        if isinstance(reports, dict):
            reports = [reports]
        passed = failed = skipped = 0
        fired = set()
        for rep in reports:
            if rep.get("check_type") not in (None, "kubernetes"):
                continue
            res = rep.get("results", {})
            passed += len(res.get("passed_checks", []))
            skipped += len(res.get("skipped_checks", []))
            for f in res.get("failed_checks", []):
                if f["check_id"] in skips:
                    skipped += 1
                    fired.add(f["check_id"])
                else:
                    failed += 1
                    where = f.get("file_path", "").lstrip("/")
                    fail(f"checkov {f['check_id']} ({f['check_name']}): {f['resource']} in {where}")
        for cid in sorted(set(skips) - fired):
            print(f"note: {SKIPS.name} lists {cid}, which no longer fails (remove it?)")
        print(f"checkov: {passed} passed, {failed} failed, {skipped} accepted by {SKIPS.name} "
              f"({', '.join(sorted(fired)) or 'none'})")
        return passed, failed, skipped


# ----------------------------------------------------------------------- examples


def eso_schema(o):
    group, version = o["apiVersion"].split("/")
    p = ESO_SCHEMAS / f"{o['kind'].lower()}-{group.split('.')[0]}-{version}.json"
    return json.loads(p.read_text()) if p.exists() else None


def check_examples():
    n_eso = n_kube = 0
    found = {}
    files = sorted(EXAMPLES.glob("*.yaml"))
    if not files:
        fail("examples/kubernetes has no manifests")
    for f in files:
        for o in yaml.safe_load_all(f.read_text()):
            if not o:
                continue
            found.setdefault(o["kind"], []).append(o)
            where = f"examples/kubernetes/{f.name}"
            if "external-secrets.io" in o["apiVersion"]:
                schema = eso_schema(o)
                if schema is None:
                    fail(f"{where}: no ESO schema for {o['apiVersion']} {o['kind']}")
                    continue
                errs = sorted(jsonschema.Draft7Validator(schema).iter_errors(o), key=lambda e: list(e.path))
                for e in errs:
                    fail(f"{where}: {oid(o)}: {'/'.join(map(str, e.path))}: {e.message}")
                n_eso += 1
            else:
                if kube_validate(where, o):
                    n_kube += 1
                check_security(where, o, workload=True)
    for kind in ("ClusterSecretStore", "SecretStore", "ExternalSecret", "PushSecret", "VaultDynamicSecret"):
        if kind not in found:
            fail(f"examples/kubernetes: no {kind}")
    # Cross-references: stores and generators named exist, roles and policies exist.
    stores = {(s["kind"], s["metadata"]["name"]) for s in found.get("SecretStore", []) + found.get("ClusterSecretStore", [])}
    gens = {g["metadata"]["name"] for g in found.get("VaultDynamicSecret", [])}
    for es in found.get("ExternalSecret", []):
        ref = es["spec"].get("secretStoreRef")
        if ref and (ref.get("kind", "SecretStore"), ref["name"]) not in stores:
            fail(f"ExternalSecret {es['metadata']['name']} names the unknown store {ref}")
        for df in es["spec"].get("dataFrom", []):
            g = df.get("sourceRef", {}).get("generatorRef")
            if g and g["name"] not in gens:
                fail(f"ExternalSecret {es['metadata']['name']} names the unknown generator {g['name']}")
    for ps in found.get("PushSecret", []):
        for ref in ps["spec"]["secretStoreRefs"]:
            if (ref.get("kind", "SecretStore"), ref["name"]) not in stores:
                fail(f"PushSecret {ps['metadata']['name']} names the unknown store {ref}")
    setup = (EXAMPLES / "setup.sh").read_text()
    chart_url = "https://airlock.airlock.svc:8200"
    for o in found.get("SecretStore", []) + found.get("ClusterSecretStore", []) + found.get("VaultDynamicSecret", []):
        v = o["spec"]["provider"]["vault"] if "vault" in o["spec"].get("provider", {}) else o["spec"]["provider"]
        if v["server"] != chart_url:
            fail(f"{oid(o)}: server {v['server']} is not the chart's Service ({chart_url})")
        role = v["auth"]["kubernetes"]["role"]
        if f"auth/kubernetes/role/{role} " not in setup:
            fail(f"{oid(o)}: setup.sh creates no kubernetes role {role}")
        elif not (EXAMPLES / "policies" / f"{role}.hcl").exists():
            fail(f"{oid(o)}: no policies/{role}.hcl")
    if not any(d["metadata"].get("annotations", {}).get("reloader.stakater.com/auto") == "true"
               for d in found.get("Deployment", [])):
        fail("examples/kubernetes: no Deployment with reloader.stakater.com/auto")
    print(f"examples: {n_eso} ESO objects against the ESO schemas, {n_kube} Kubernetes objects validated")
    return n_eso, n_kube


# ------------------------------------------------------------- setup.sh vs Airlock


def check_setup_against(airlock):
    """setup.sh against a dev server (twice: it must be safe to run again), then each ESO
    policy's reach, asked of Airlock itself (sys/capabilities)."""
    with tempfile.TemporaryDirectory() as home:
        proc = subprocess.Popen([airlock, "server", "--dev", "--dev-listen-address", "127.0.0.1:0"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                start_new_session=True)
        try:
            addr = token = None
            deadline = time.time() + 30
            while time.time() < deadline and not (addr and token):
                line = proc.stdout.readline()
                if not line:
                    break
                m = re.match(r"export AIRLOCK_ADDR=(\S+) AIRLOCK_TOKEN=(\S+)", line)
                if m:
                    addr, token = m.groups()
            if not addr:
                fail("the dev server did not start")
                return
            env = {**os.environ, "HOME": home, "AIRLOCK_ADDR": addr, "AIRLOCK_TOKEN": token,
                   "AIRLOCK": airlock}
            env.pop("VOICE_PG_URL", None)
            for run in (1, 2):
                r = subprocess.run(["bash", str(EXAMPLES / "setup.sh")], env=env, capture_output=True,
                                   text=True, timeout=120)
                if r.returncode != 0:
                    fail(f"setup.sh (run {run}) failed: {r.stdout}{r.stderr}")
                    return

            def api(method, path, body=None, tok=token):
                req = urllib.request.Request(f"{addr}/v1/{path}", method=method,
                                             data=json.dumps(body).encode() if body is not None else None,
                                             headers={"X-Vault-Token": tok})
                with urllib.request.urlopen(req, timeout=10) as resp:
                    return json.load(resp)

            reach = {
                "eso-shared": {"secret/data/shared/observability": ["read"], "secret/data/voice": ["deny"],
                               "secret/data/shared": ["deny"]},
                "eso-voice": {"secret/data/voice": ["read"], "secret/data/voice/x": ["read"],
                              "secret/data/voicemail": ["deny"], "secret/data/shared/x": ["deny"]},
                "eso-voice-push": {"secret/data/voice/pushed/webhook": ["create", "delete", "read", "update"],
                                   "secret/data/voice": ["deny"], "secret/data/voice/other": ["deny"]},
                "eso-voice-db": {"database/creds/voice-agent": ["read"], "database/creds/admin": ["deny"]},
            }
            for policy, paths in reach.items():
                t = api("POST", "auth/token/create", {"policies": [policy], "no_default_policy": True})["auth"]["client_token"]
                got = api("POST", "sys/capabilities", {"token": t, "paths": list(paths)})
                for p, want in paths.items():
                    if sorted(got.get(p, [])) != want:
                        fail(f"policy {policy}: capabilities on {p} are {got.get(p)}, want {want}")
            role = api("GET", "auth/kubernetes/role/eso-voice-db")["data"]
            if role["token_ttl"] < 3600:
                fail("role eso-voice-db: token_ttl below the database role's 1 h (leases would end early)")
            print(f"setup.sh: ran twice against {addr}; {len(reach)} ESO policies reach exactly their prefix")
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def check_configs_with(airlock):
    """Every profile's config file, as the server reads it, started with the real binary
    and the container's environment (downward API values from the test): every key and
    every AIRLOCK_* variable is checked at start-up, so a key or value the chart writes
    wrong stops it. Only what needs the cluster changes: paths move to a scratch
    directory, the listener to 127.0.0.1:0 without TLS (no certificate here), and
    PostgreSQL storage (no database here; deploy/test/pod_view.py runs it) to SQLite."""
    for profile, objs in objs_of.items():
        if not any(o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-config") for _, o in objs):
            continue
        w = next(o for _, o in objs if o["kind"] in ("StatefulSet", "Deployment"))
        c = next(x for x in w["spec"]["template"]["spec"]["containers"] if x["name"] == "airlock")
        text = config_text(profile)
        with tempfile.TemporaryDirectory() as d:
            key = Path(d) / "unseal-key"
            key.write_text("ab" * 32)
            lines = []
            for line in text.splitlines():
                k = line.split("=", 1)[0].strip()
                if k in ("tls_cert_file", "tls_key_file", "connection_url_file"):
                    continue
                if k == "address":
                    line = 'address = "127.0.0.1:0"'
                elif k == "key_file":
                    line = f'key_file = "{key}"'
                elif k == "table":
                    line = f'path = "{d}/data/airlock.db"'
                elif k == "backend":
                    line = 'backend = "sqlite"'
                elif k == "path":
                    line = re.sub(r'"/', f'"{d}/', line)
                lines.append(line)
            cfg = Path(d) / "airlock.toml"
            cfg.write_text("\n".join(lines) + "\n")
            ipv6 = profile_values(PROFILES[profile]).get("config", {}).get("podIPFamily") == "IPv6"
            fields = {**POD_FIELDS, "status.podIP": "fd00:10:244::7"} if ipv6 else POD_FIELDS
            env = {k: v for k, v in kubelet.container_env(c, fields).items()
                   if k not in ("AIRLOCK_CACERT", "HOME")}
            proc = subprocess.Popen([airlock, "server", "--config", str(cfg)], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, start_new_session=True,
                                    env={**env, "PATH": os.environ["PATH"], "HOME": d})
            try:
                out, deadline = "", time.time() + 30
                while time.time() < deadline:
                    line = proc.stdout.readline()
                    if not line:
                        break
                    out += line
                    if line.startswith("Listening on"):
                        break
                if "Listening on" not in out:
                    fail(f"{profile}: the server refuses the rendered config: {out.strip()[-1500:]}")
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
    print("configs: the server starts on every profile's config")


def main():
    ap = argparse.ArgumentParser(description="Checks the Helm chart and the Kubernetes examples.")
    ap.add_argument("--airlock", help="airlock binary: also run examples/kubernetes/setup.sh against it")
    a = ap.parse_args()
    if a.airlock:
        a.airlock = str(Path(a.airlock).resolve())
    started = time.time()
    counts = check_chart()
    check_agent_chart(counts)
    print(f"rendered objects: {counts['objects']}, validated against Kubernetes {KUBE_VERSION}: "
          f"{counts['kube_validated']} (the rest: ServiceMonitor, checked by shape)")
    check_examples()
    run_checkov()
    if a.airlock:
        check_configs_with(a.airlock)
        check_setup_against(a.airlock)
    print(f"done in {time.time() - started:.1f}s")
    if failures:
        print(f"\n{len(failures)} failure(s):")
        for f in failures:
            print(f"  - {f}")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
