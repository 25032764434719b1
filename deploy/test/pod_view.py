#!/usr/bin/env python3
"""The pod's view: runs the server exactly as the rendered chart runs it.

    python3 deploy/test/pod_view.py AIRLOCK_BIN

Renders deploy/helm/airlock and runs the server container as the kubelet would, with this
binary: its command and arguments; its environment resolved as the kubelet resolves it
(`$(VAR)` expansion, downward-API fields from the test's pod name and IP, secretKeyRef and
configMapKeyRef from the test's Secrets); its volumes filled as the kubelet fills them
(the rendered ConfigMap, the test's Secrets, projected sources; emptyDirs and claims as
scratch directories; subPath and subPathExpr resolved). Only what cannot exist outside a
pod changes: every mount path becomes its scratch directory (in arguments, environment
values and mounted files alike) and the listener 127.0.0.1 on a free port. Nothing else
is in the server's environment.

Single profile (values-single.yaml: SQLite, key-file seal):
1. the pod has no init container; before initialisation the startup and liveness probes
   succeed as the kubelet judges them (a TCP connection; an HTTP status in 200..399) and
   the readiness probe does not;
2. `PUT /v1/sys/init` initialises with the key-file seal: the node unseals, turns ready and
   writes its audit log on its volume;
3. after SIGTERM and a start with the same command line the node unseals itself from the
   key file and is ready again without any unseal call, with its data;
4. sealed by `sys/seal`, it is alive but not ready.

HA profile (values-ha.yaml: PostgreSQL, key-file seal, HTTPS with a test certificate), two
pods on PostgreSQL at 127.0.0.1:5432 (user postgres, trust authentication, database
postgres) in a table of their own, dropped at the end. The test Secret's connection string
has the documented form (TLS options included, naming the mounted CA) and reaches
PostgreSQL through a TCP relay the test can cut:
5. both pods start before initialisation: alive, not ready;
6. `PUT /v1/sys/init` on one: the other unseals on its own and turns ready within 10 s, in
   the same process (no restart);
7. `sys/ha-status` and `sys/leader` report the addresses AIRLOCK_API_ADDR and
   AIRLOCK_CLUSTER_ADDR gave, each pod's own IP; a write on one is read on the other; each
   pod's audit log is in its own directory of the volume (subPathExpr);
8. PostgreSQL cut off: both pods turn unready and stay alive (liveness passes); back: both
   are ready again, in the same processes.
Without PostgreSQL or openssl the HA part is skipped with a message, or fails when CI is set.

Every process it starts is ended (by its PID) whatever happens; the whole run is bounded.
"""

import copy
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import helm_python as helm
import yaml

import kubelet

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy/helm/airlock"
TOTAL_SECONDS = 240
NAMESPACE = "airlock"
PG = ("127.0.0.1", 5432)

# Every Pod started, so that whatever happens each process is ended.
PODS = []


class Failure(Exception):
    pass


def die(msg):
    raise Failure(msg)


def expect(cond, msg):
    if not cond:
        die(msg)
    print(f"ok: {msg}")


def merge(a, b):
    """Helm's values merge: maps merge key by key, anything else replaces."""
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def render(values_file, extra=None):
    values = merge(yaml.safe_load((CHART / values_file).read_text()), extra or {})
    with helm.Chart.load(str(CHART)) as c:
        out = c.render(values=values, name="airlock", namespace=NAMESPACE, is_install=True)
    return [d for k, t in out.items() if not k.endswith("NOTES.txt") for d in yaml.safe_load_all(t) if d]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def items_of(data, items, what):
    """The files a Secret/ConfigMap volume source holds: {path: text}."""
    if items is None:
        return dict(data)
    out = {}
    for i in items:
        if i["key"] not in data:
            die(f"{what} has no key {i['key']}")
        out[i["path"]] = data[i["key"]]
    return out


class Pod:
    """The server container of the rendered pod, named `name`, with IP `ip`."""

    def __init__(self, name, ip, objs, secrets_, airlock, scratch, cafile=None):
        self.name, self.ip, self.cafile = name, ip, cafile
        self.dir = scratch / name
        self.dir.mkdir(parents=True)
        w = next(o for o in objs if o["kind"] in ("StatefulSet", "Deployment"))
        spec = w["spec"]["template"]["spec"]
        if spec.get("initContainers"):
            die(f"the pod has init containers {[i['name'] for i in spec['initContainers']]}")
        c = self.c = next(x for x in spec["containers"] if x["name"] == "airlock")
        configmaps = {o["metadata"]["name"]: o.get("data", {}) for o in objs if o["kind"] == "ConfigMap"}
        # In every namespace (the cluster's CA, for projected service-account volumes).
        configmaps.setdefault("kube-root-ca.crt", {"ca.crt": "cluster CA of the pod view\n"})
        fields = {"metadata.name": name, "metadata.namespace": NAMESPACE, "metadata.uid": secrets.token_hex(8),
                  "status.podIP": ip, "status.podIPs": ip, "status.hostIP": "192.168.7.2",
                  "spec.nodeName": "node-pod-view", "spec.serviceAccountName": spec.get("serviceAccountName", "default")}
        try:
            self.env = kubelet.container_env(c, fields, secrets_, configmaps)
        except kubelet.KubeletError as e:
            die(str(e))

        # Volumes (claim templates of a StatefulSet included) -> scratch directories.
        templates = [{"name": t["metadata"]["name"], "persistentVolumeClaim": {}}
                     for t in w["spec"].get("volumeClaimTemplates", [])]
        self.volumes = {}
        for v in spec.get("volumes", []) + templates:
            d = self.dir / "volumes" / v["name"]
            d.mkdir(parents=True)
            self.volumes[v["name"]] = (v, d)
        # Mounts -> their directories, sub-paths resolved.
        self.paths = {}
        for m in c.get("volumeMounts", []):
            if m["name"] not in self.volumes:
                die(f"volume {m['name']} is mounted but not defined")
            sub = m.get("subPath") or kubelet.expand(m.get("subPathExpr", ""), self.env)
            if "$(" in sub or sub.startswith("/") or ".." in sub.split("/"):
                die(f"mount {m['name']}: sub-path {sub!r} does not resolve to a relative path")
            target = self.volumes[m["name"]][1] / sub if sub else self.volumes[m["name"]][1]
            target.mkdir(parents=True, exist_ok=True)
            self.paths[m["mountPath"]] = target
        # Volume contents, with in-pod paths rewritten like everything else.
        for v, d in self.volumes.values():
            for rel, text in self.volume_files(v, secrets_, configmaps, fields).items():
                (d / rel).parent.mkdir(parents=True, exist_ok=True)
                (d / rel).write_text(self.rewrite(text))
        self.env = {k: self.rewrite(v) for k, v in self.env.items()}

        if c["command"][0] != "airlock":
            die(f"the container runs {c['command']}, not airlock")
        self.argv = [airlock] + [self.rewrite(kubelet.expand(a, self.env))
                                 for a in c["command"][1:] + c.get("args", [])]
        self.config = Path(self.argv[self.argv.index("--config") + 1])
        if not self.config.is_file():
            die(f"--config {self.config} is on no mounted volume")
        text = self.config.read_text()
        listen = next(line for line in text.splitlines() if line.startswith("address = "))
        container_port = next(p["containerPort"] for p in c["ports"] if p["name"] == "api")
        if not listen.endswith(f':{container_port}"'):
            die(f"the listener ({listen}) is not on the container port {container_port}")
        self.port = free_port()
        self.config.write_text(text.replace(listen, f'address = "127.0.0.1:{self.port}"'))
        self.scheme = "https" if "tls_cert_file" in text else "http"
        self.proc = None
        self.log = self.dir / "server.log"

    def volume_files(self, v, secrets_, configmaps, fields):
        """{path: text} a volume holds when the pod starts."""
        if "configMap" in v or "secret" in v:
            kind, ref = ("ConfigMap", v["configMap"]) if "configMap" in v else ("Secret", v["secret"])
            name = ref.get("name") or ref.get("secretName")
            data = (configmaps if kind == "ConfigMap" else secrets_).get(name)
            if data is None:
                return {} if ref.get("optional") else die(f"volume {v['name']}: {kind} {name} does not exist")
            return items_of(data, ref.get("items"), f"{kind} {name}")
        if "projected" in v:
            out = {}
            for src in v["projected"]["sources"]:
                if "secret" in src or "configMap" in src:
                    kind, ref = ("Secret", src["secret"]) if "secret" in src else ("ConfigMap", src["configMap"])
                    data = (secrets_ if kind == "Secret" else configmaps).get(ref["name"])
                    if data is None:
                        if ref.get("optional"):
                            continue
                        die(f"volume {v['name']}: {kind} {ref['name']} does not exist")
                    out.update(items_of(data, ref.get("items"), f"{kind} {ref['name']}"))
                elif "serviceAccountToken" in src:
                    out[src["serviceAccountToken"]["path"]] = "service-account-token-of-the-pod-view"
                elif "downwardAPI" in src:
                    for i in src["downwardAPI"]["items"]:
                        out[i["path"]] = fields[i["fieldRef"]["fieldPath"]]
                else:
                    die(f"volume {v['name']}: unsupported projected source {sorted(src)}")
            return out
        if "emptyDir" in v or "persistentVolumeClaim" in v:
            return {}
        die(f"volume {v['name']}: unsupported type {sorted(k for k in v if k != 'name')}")

    def rewrite(self, text):
        """Mount paths in `text` -> their scratch directories (longest first)."""
        for mp in sorted(self.paths, key=len, reverse=True):
            text = text.replace(mp.rstrip("/") + "/", str(self.paths[mp]) + "/")
            if text == mp:
                text = str(self.paths[mp])
        return text

    def volume(self, name):
        return self.volumes[name][1]

    def start(self):
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        PODS.append(self)
        print(f"{self.name}: started pid {self.proc.pid}: {' '.join(self.argv[1:])}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=15):
        """SIGTERM, and the exit code; SIGKILL (and a failure) after `timeout` seconds."""
        if not self.alive():
            return self.proc.returncode if self.proc else None
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            die(f"{self.name}: pid {self.proc.pid} did not stop within {timeout}s of SIGTERM")

    def kill(self):
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def request(self, method, path, body=None, token=None, context=None):
        """(status, JSON body or None); status 0 when nothing answered."""
        headers = {"X-Vault-Token": token} if token else {}
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.scheme}://127.0.0.1:{self.port}{path}", method=method,
                                     data=data, headers=headers)
        if context is None and self.scheme == "https":
            context = ssl.create_default_context(cafile=self.cafile)
        try:
            with urllib.request.urlopen(req, timeout=5, context=context) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, None
        except (urllib.error.URLError, ConnectionError, socket.timeout, ssl.SSLError):
            return 0, None

    def probe(self, name):
        """(what it saw, success) as the kubelet judges the probe: a TCP connection that
        opens; an HTTP(S) GET (certificate not verified) with a status in 200..399."""
        p = self.c[name]
        timeout = p.get("timeoutSeconds", 1)
        if "tcpSocket" in p:
            if p["tcpSocket"]["port"] not in ("api", self.c["ports"][0]["containerPort"]):
                die(f"{name} connects to port {p['tcpSocket']['port']}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=timeout).close()
                return "connected", True
            except OSError as e:
                return f"refused ({e})", False
        g = p.get("httpGet")
        if g is None or g["port"] != "api":
            die(f"{name} is {p}")
        if g["scheme"].lower() != self.scheme:
            die(f"{name} uses {g['scheme']}, the listener {self.scheme}")
        ctx = ssl._create_unverified_context() if self.scheme == "https" else None
        status, _ = self.request("GET", g["path"], context=ctx)
        return status, 200 <= status < 400

    def wait(self, what, cond, seconds=20):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if not self.alive():
                die(f"{self.name} exited ({self.proc.returncode}) while waiting for {what}:\n{self.tail()}")
            if cond():
                return
            time.sleep(0.05)
        die(f"{self.name}: {what} within {seconds}s:\n{self.tail()}")

    def tail(self):
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


def expect_unready_but_alive(pod, when):
    for name in ("startupProbe", "livenessProbe"):
        saw, ok = pod.probe(name)
        expect(ok, f"{pod.name} {when}: {name} succeeds ({saw})")
    saw, ok = pod.probe("readinessProbe")
    expect(not ok, f"{pod.name} {when}: readinessProbe {pod.c['readinessProbe']['httpGet']['path']} fails ({saw})")


# ------------------------------------------------------------------------ single


def single_part(airlock, scratch):
    objs = render("values-single.yaml")
    pod = Pod("airlock-0", "10.244.0.9", objs, {"airlock-unseal": {"unseal-key": secrets.token_hex(32)}},
              airlock, scratch)
    print("single: the pod has no init container; its container runs as rendered")
    print(f"config: {pod.config}\n" + pod.config.read_text())
    pod.start()
    pod.wait("the listener accepts", lambda: pod.probe("livenessProbe")[1])
    expect_unready_but_alive(pod, "uninitialised")

    status, init = pod.request("PUT", "/v1/sys/init", {})
    expect(status == 200 and init.get("root_token") and init.get("keys") == [],
           f"PUT /v1/sys/init with the key-file seal: 200, a root token, no key shares ({status})")
    root = init["root_token"]
    pod.wait("readiness after sys/init", lambda: pod.probe("readinessProbe")[1], 10)
    status, health = pod.request("GET", "/v1/sys/health")
    expect(status == 200 and health["initialized"] and not health["sealed"],
           "initialised and unsealed from the mounted key file; readiness passes")
    status, _ = pod.request("POST", "/v1/sys/mounts/secret", {"type": "kv", "options": {"version": "2"}}, root)
    expect(status in (200, 204), f"a KV v2 mount is enabled ({status})")
    status, _ = pod.request("POST", "/v1/secret/data/voice", {"data": {"openai_key": "sk-pod-view"}}, root)
    expect(status == 200, f"a secret is written ({status})")
    audit = pod.paths["/var/log/airlock"] / "audit.log"
    expect(audit.exists() and audit.stat().st_size > 0, f"the audit log is written on its volume ({audit})")
    expect(any(pod.volume("data").iterdir()), "the store is on the data volume")

    code = pod.stop()
    expect(code == 0, f"SIGTERM: the server drained and exited 0 ({code})")
    pod.start()
    pod.wait("readiness after the restart, without an unseal call", lambda: pod.probe("readinessProbe")[1])
    status, health = pod.request("GET", "/v1/sys/health")
    expect(status == 200 and not health["sealed"], "restarted: auto-unsealed from the key file, ready")
    status, body = pod.request("GET", "/v1/secret/data/voice", token=root)
    expect(status == 200 and body["data"]["data"]["openai_key"] == "sk-pod-view",
           "restarted: the root token and the secret survived")

    status, _ = pod.request("PUT", "/v1/sys/seal", token=root)
    expect(status in (200, 204), f"sealed by sys/seal ({status})")
    expect_unready_but_alive(pod, "sealed")
    code = pod.stop()
    expect(code == 0, f"SIGTERM while sealed: exited 0 ({code})")


# ---------------------------------------------------------------------------- HA


def pg_query(sql, timeout=5):
    """Runs `sql` as postgres on database postgres at 127.0.0.1:5432 over PostgreSQL's wire
    protocol (trust authentication; no client library needed). Raises OSError or
    RuntimeError."""
    with socket.create_connection(PG, timeout=timeout) as s:
        params = b"user\0postgres\0database\0postgres\0application_name\0airlock-pod-view\0\0"
        s.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
        buf, sent = b"", False
        while True:
            while len(buf) < 5 or len(buf) < 1 + struct.unpack("!i", buf[1:5])[0]:
                chunk = s.recv(65536)
                if not chunk:
                    raise RuntimeError("PostgreSQL closed the connection")
                buf += chunk
            n = struct.unpack("!i", buf[1:5])[0]
            kind, body, buf = buf[:1], buf[5:1 + n], buf[1 + n:]
            if kind == b"R" and struct.unpack("!i", body[:4])[0] != 0:
                raise RuntimeError("PostgreSQL asks for a password (the test expects trust authentication)")
            if kind == b"E":
                fields = {f[:1]: f[1:] for f in body.split(b"\0") if f}
                raise RuntimeError(fields.get(b"M", b"error").decode(errors="replace"))
            if kind == b"Z":
                if sent:
                    s.sendall(b"X" + struct.pack("!i", 4))
                    return
                q = sql.encode() + b"\0"
                s.sendall(b"Q" + struct.pack("!i", 4 + len(q)) + q)
                sent = True


class Relay:
    """A TCP relay 127.0.0.1:port -> PostgreSQL that the test cuts (closing the listener
    and every connection) and restores. Threads, no process."""

    def __init__(self):
        self.port = free_port()
        self.listener = None
        self.conns = []
        self.lock = threading.Lock()

    def up(self):
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(64)
        ls.settimeout(0.2)
        self.listener = ls
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()

    def _accept(self, ls):
        while self.listener is ls:
            try:
                c, _ = ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                u = socket.create_connection(PG, timeout=5)
            except OSError:
                c.close()
                continue
            c.settimeout(None)
            u.settimeout(None)
            with self.lock:
                self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def down(self):
        ls, self.listener = self.listener, None
        if ls is not None:
            ls.close()
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def make_tls(d):
    """A self-signed certificate for the listener (also its CA), as cert-manager's Secret
    would hold it: names the Service and 127.0.0.1 (values-tls.yaml)."""
    crt, key = d / "tls.crt", d / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(crt), "-days", "1", "-subj", "/CN=airlock.airlock.svc",
                    "-addext", "subjectAltName=DNS:airlock.airlock.svc,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=30)
    return crt.read_text(), key.read_text(), str(crt)


def ha_prerequisites():
    """None, or why the HA part cannot run here."""
    try:
        pg_query("SELECT 1")
    except (OSError, RuntimeError) as e:
        return f"PostgreSQL at {PG[0]}:{PG[1]} (user postgres, trust authentication) is not reachable: {e}"
    if not shutil.which("openssl"):
        return "openssl is not installed (the HA profile's HTTPS listener needs a test certificate)"
    return None


def ha_part(airlock, scratch):
    why = ha_prerequisites()
    if why:
        if "CI" in os.environ:
            die(f"HA part: {why}; CI must have it")
        print(f"SKIPPED: the HA part (two pods on PostgreSQL): {why}")
        return
    scratch.mkdir(parents=True)
    table = f"airlock_podview_{secrets.token_hex(5)}"
    relay = Relay()
    relay.up()
    pods = []
    try:
        crt, key, cafile = make_tls(scratch)
        secrets_ = {
            "airlock-unseal": {"unseal-key": secrets.token_hex(32)},
            # The documented form: TLS options in the string, naming the mounted CA (read
            # at start even with sslmode=disable: the path must resolve to a certificate).
            "airlock-postgres": {"connection_url": f"host=127.0.0.1 port={relay.port} user=postgres dbname=postgres "
                                                   "application_name=airlock-pod-view sslmode=disable "
                                                   "sslrootcert=/etc/airlock/pg-tls/ca.crt\n"},
            "airlock-postgres-ca": {"ca.crt": crt},
            "airlock-tls": {"tls.crt": crt, "tls.key": key, "ca.crt": crt},
        }
        objs = render("values-ha.yaml", {"storage": {"postgresql": {"table": table}}})
        print(f"HA: table {table}, PostgreSQL through 127.0.0.1:{relay.port}")
        for name, ip in (("airlock-6f7c9d8b5-k2x7q", "10.244.1.17"), ("airlock-6f7c9d8b5-p9m4t", "10.244.2.23")):
            pods.append(Pod(name, ip, objs, secrets_, airlock, scratch, cafile))
        a, b = pods
        cfg = a.config.read_text()
        expect("connection_url_file" in cfg and "connection_url =" not in cfg and "AIRLOCK_PG_CONNECTION_URL" not in a.env,
               "HA: the connection string is the mounted Secret's file (connection_url_file), in no variable")
        want = {f"https://{p.ip}:8200" for p in pods}
        expect({p.env.get("AIRLOCK_API_ADDR") for p in pods} == want
               and all(p.env["AIRLOCK_CLUSTER_ADDR"] == p.env["AIRLOCK_API_ADDR"] for p in pods),
               f"HA: AIRLOCK_API_ADDR/AIRLOCK_CLUSTER_ADDR resolve to each pod's IP ({sorted(want)})")

        # One at a time: the first creates the tables.
        for p in pods:
            p.start()
            p.wait("the listener accepts", lambda p=p: p.probe("livenessProbe")[1])
        for p in pods:
            expect_unready_but_alive(p, "started before init")
        pids = {p.name: p.proc.pid for p in pods}

        status, init = a.request("PUT", "/v1/sys/init", {})
        expect(status == 200 and init.get("root_token") and init.get("keys") == [],
               f"PUT /v1/sys/init on {a.name}: 200, a root token, no key shares ({status})")
        root = init["root_token"]
        t0 = time.time()
        a.wait("readiness after sys/init", lambda: a.probe("readinessProbe")[1], 10)
        b.wait("readiness of the other replica, started before init, without a restart",
               lambda: b.probe("readinessProbe")[1], 10)
        expect(b.alive() and b.proc.pid == pids[b.name],
               f"{b.name} unsealed itself and turned ready {time.time() - t0:.1f}s after the init, "
               f"in the same process (pid {b.proc.pid})")

        status, body = b.request("GET", "/v1/sys/ha-status", token=root)
        nodes = (body or {}).get("data", body or {}).get("nodes", [])
        expect(status == 200 and {n["api_address"] for n in nodes} == want
               and {n["cluster_address"] for n in nodes} == want,
               f"sys/ha-status on {b.name} lists both nodes at the addresses the env gave "
               f"({sorted(n['api_address'] for n in nodes)})")
        status, leader = b.request("GET", "/v1/sys/leader")
        expect(status == 200 and leader.get("ha_enabled") and leader.get("leader_address") in want,
               f"sys/leader on {b.name}: the leader is at {leader.get('leader_address') if leader else None}")

        status, _ = a.request("POST", "/v1/sys/mounts/secret", {"type": "kv", "options": {"version": "2"}}, root)
        expect(status in (200, 204), f"a KV v2 mount is enabled on {a.name} ({status})")
        status, _ = a.request("POST", "/v1/secret/data/voice", {"data": {"k": "v-ha"}}, root)
        b.wait("the write on the other node to be readable",
               lambda: b.request("GET", "/v1/secret/data/voice", token=root)[0] == 200, 10)
        status, got = b.request("GET", "/v1/secret/data/voice", token=root)
        expect(status == 200 and got["data"]["data"]["k"] == "v-ha", f"written on {a.name}, read on {b.name}")
        for p in pods:
            f = p.volume("audit") / p.name / "audit.log"
            expect(f.exists() and f.stat().st_size > 0,
                   f"{p.name}: audit log in its own directory of the volume (<volume>/{p.name}/audit.log)")

        relay.down()
        print("PostgreSQL cut off (the relay closed its listener and every connection)")
        for p in pods:
            p.wait("readiness to fail without PostgreSQL", lambda p=p: not p.probe("readinessProbe")[1], 15)
        deadline = time.time() + 4
        while time.time() < deadline:
            for p in pods:
                if not p.probe("livenessProbe")[1] or not p.probe("startupProbe")[1]:
                    die(f"{p.name}: liveness failed during the database outage:\n{p.tail()}")
            time.sleep(0.5)
        for p in pods:
            saw, _ = p.probe("readinessProbe")
            expect(p.alive(), f"{p.name} without PostgreSQL: unready ({saw}), liveness passes for 4 s")
        relay.up()
        print("PostgreSQL back")
        for p in pods:
            p.wait("readiness once PostgreSQL is back", lambda p=p: p.probe("readinessProbe")[1], 30)
        expect(all(p.alive() and p.proc.pid == pids[p.name] for p in pods),
               "PostgreSQL back: both ready again in the same processes (no restart)")
        for p in pods:
            code = p.stop()
            expect(code == 0, f"{p.name}: SIGTERM, exited 0 ({code})")
    finally:
        for p in pods:
            p.kill()
        relay.down()
        try:
            pg_query(f"SET lock_timeout = '5s'; DROP TABLE IF EXISTS {table}, {table}_nodes")
            print(f"dropped {table} and {table}_nodes")
        except (OSError, RuntimeError) as e:
            print(f"warning: could not drop {table}: {e}")


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    airlock = str(Path(sys.argv[1]).resolve())
    scratch = Path(tempfile.mkdtemp(prefix="airlock-pod-view-"))

    def on_alarm(*_):
        raise TimeoutError(f"pod_view did not finish within {TOTAL_SECONDS}s")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    signal.alarm(TOTAL_SECONDS)
    try:
        single_part(airlock, scratch / "single")
        ha_part(airlock, scratch / "ha")
        print("pod view: all checks passed")
        return 0
    except (Failure, TimeoutError) as e:
        print(f"FAIL: {e}")
        return 1
    finally:
        signal.alarm(0)
        for p in PODS:
            p.kill()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
