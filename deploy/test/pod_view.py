#!/usr/bin/env python3
"""The pod's view: runs the server exactly as the rendered chart runs it.

    python3 deploy/test/pod_view.py AIRLOCK_BIN

Renders deploy/helm/airlock (the single profile with key-file auto-unseal,
values-single.yaml), takes the server container's command, arguments and environment and
the ConfigMap's config file, and changes only what cannot exist outside a pod: every
volume's mount path becomes a scratch directory (the mounted config, the data volume, the
unseal-key Secret, the audit volume, ...) and the listen address becomes 127.0.0.1 on a
free port. Then, with nothing else in the environment:

1. before initialisation the liveness and startup probes' requests succeed as the kubelet
   judges them (a status in 200..399) and the readiness probe's does not;
2. `PUT /v1/sys/init` initialises with the key-file seal: the node unseals from the
   mounted key, readiness passes, the audit log is written on its volume;
3. after SIGTERM and a start with the same command line the node unseals itself from the
   key file and is ready again without any unseal call, with its data;
4. sealed by `sys/seal`, it is alive but not ready.

The process it starts is ended (by its PID) whatever happens; the whole run is bounded.
"""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy/helm/airlock"
TOTAL_SECONDS = 120


def die(msg):
    print(f"FAIL: {msg}")
    raise SystemExit(1)


def render():
    values = yaml.safe_load((CHART / "values-single.yaml").read_text())
    with helm.Chart.load(str(CHART)) as c:
        out = c.render(values=values, name="airlock", namespace="airlock", is_install=True)
    objs = [d for k, t in out.items() if not k.endswith("NOTES.txt") for d in yaml.safe_load_all(t) if d]
    sts = next(o for o in objs if o["kind"] == "StatefulSet")
    cm = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-config"))
    return sts["spec"]["template"]["spec"], cm


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Pod:
    """The server container of the rendered pod, with its paths moved to `scratch`."""

    def __init__(self, spec, cm, airlock, scratch):
        self.scratch = scratch
        c = next(x for x in spec["containers"] if x["name"] == "airlock")
        if spec.get("initContainers"):
            die("the single/SQLite profile has init containers; this test runs the server only")
        volumes = {v["name"]: v for v in spec["volumes"]}
        claims = {"data", "audit"}  # volumeClaimTemplates of the StatefulSet
        self.paths = {}  # mount path in the pod -> scratch directory
        for m in c["volumeMounts"]:
            (scratch / m["name"]).mkdir()
            self.paths[m["mountPath"]] = scratch / m["name"]
        for m in c["volumeMounts"]:
            d = self.paths[m["mountPath"]]
            v = volumes.get(m["name"])
            if v is None and m["name"] not in claims:
                die(f"volume {m['name']} is mounted but not defined")
            if v and "configMap" in v:
                if v["configMap"]["name"] != cm["metadata"]["name"]:
                    die(f"unexpected ConfigMap volume {v['configMap']['name']}")
                for k, text in cm["data"].items():
                    (d / k).write_text(self.rewrite(text))
            if v and "secret" in v and m["name"] == "unseal-key":
                # What `kubectl create secret generic airlock-unseal --from-literal=unseal-key=$(openssl rand -hex 32)` holds.
                for item in v["secret"]["items"]:
                    (d / item["path"]).write_text(secrets.token_hex(32))
        self.port = free_port()
        cfg_text = cm["data"]["airlock.toml"]
        listen = next(line for line in cfg_text.splitlines() if line.startswith("address = "))
        self.container_port = next(p["containerPort"] for p in c["ports"] if p["name"] == "api")
        if not listen.endswith(f':{self.container_port}"'):
            die(f"the listener ({listen}) is not on the container port {self.container_port}")
        for d in self.paths.values():
            cfg = d / "airlock.toml"
            if cfg.exists():
                cfg.write_text(cfg.read_text().replace(listen, f'address = "127.0.0.1:{self.port}"'))
        if c["command"][0] != "airlock":
            die(f"the container runs {c['command']}, not airlock")
        self.argv = [airlock] + c["command"][1:] + [self.rewrite(a) for a in c.get("args", [])]
        self.env = {}
        for e in c.get("env", []):
            if "value" not in e:
                die(f"environment variable {e['name']} is not a literal value")
            self.env[e["name"]] = self.rewrite(e["value"])
        self.probes = {k: c[k]["httpGet"] for k in ("startupProbe", "livenessProbe", "readinessProbe")}
        self.proc = None
        self.log = scratch / "server.log"

    def rewrite(self, text):
        """Mount paths in `text` -> their scratch directories (longest first)."""
        for mp in sorted(self.paths, key=len, reverse=True):
            text = text.replace(mp + "/", str(self.paths[mp]) + "/")
            if text == mp:
                text = str(self.paths[mp])
        return text

    def start(self):
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        print(f"started pid {self.proc.pid}: {' '.join(self.argv)}")

    def stop(self, timeout=15):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            die(f"pid {self.proc.pid} did not stop within {timeout}s of SIGTERM")

    def request(self, method, path, body=None, token=None):
        """(status, JSON body or None); status 0 when nothing answered."""
        headers = {"X-Vault-Token": token} if token else {}
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method, data=data, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, None
        except (urllib.error.URLError, ConnectionError, socket.timeout):
            return 0, None

    def probe(self, name):
        """As the kubelet judges an HTTP probe: success iff 200 <= status < 400."""
        p = self.probes[name]
        if p["port"] != "api" or p["scheme"] != "HTTP":
            die(f"{name} probes {p['scheme']} port {p['port']}")
        status, _ = self.request("GET", p["path"])
        return status, 200 <= status < 400

    def wait(self, what, cond, seconds=20):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.proc.poll() is not None:
                die(f"the server exited ({self.proc.returncode}) while waiting for {what}:\n{self.log.read_text()[-3000:]}")
            if cond():
                return
            time.sleep(0.05)
        die(f"{what} within {seconds}s:\n{self.log.read_text()[-3000:]}")


def expect(cond, msg):
    if not cond:
        die(msg)
    print(f"ok: {msg}")


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    airlock = str(Path(sys.argv[1]).resolve())
    spec, cm = render()
    scratch = Path(tempfile.mkdtemp(prefix="airlock-pod-view-"))
    pod = Pod(spec, cm, airlock, scratch)

    def on_alarm(*_):
        raise TimeoutError(f"pod_view did not finish within {TOTAL_SECONDS}s")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    signal.alarm(TOTAL_SECONDS)
    try:
        print(f"config: {pod.argv[-1]}\n" + Path(pod.argv[-1]).read_text())
        pod.start()
        pod.wait("the listener answers", lambda: pod.probe("livenessProbe")[0] != 0)
        for name in ("startupProbe", "livenessProbe"):
            status, ok = pod.probe(name)
            expect(ok, f"uninitialised: {name} {pod.probes[name]['path']} succeeds ({status})")
        status, ok = pod.probe("readinessProbe")
        expect(not ok, f"uninitialised: readinessProbe {pod.probes['readinessProbe']['path']} fails ({status})")

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
        data = pod.paths["/var/lib/airlock"]
        expect(any(data.iterdir()), "the store is on the data volume")

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
        status, ok = pod.probe("livenessProbe")
        expect(ok, f"sealed: livenessProbe succeeds ({status}); a restart would not help a sealed node")
        status, ok = pod.probe("readinessProbe")
        expect(not ok, f"sealed: readinessProbe fails ({status}); the Service sends it no clients")
        code = pod.stop()
        expect(code == 0, f"SIGTERM while sealed: exited 0 ({code})")
        print("pod view: all checks passed")
        return 0
    except TimeoutError as e:
        print(f"FAIL: {e}")
        return 1
    finally:
        signal.alarm(0)
        if pod.proc is not None and pod.proc.poll() is None:
            os.kill(pod.proc.pid, signal.SIGKILL)
            pod.proc.wait()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
