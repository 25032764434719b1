"""What the kubelet does to a container's spec before it runs it, for the chart's tests.

- `expand`: Kubernetes' `$(VAR)` expansion (env values, command, args, subPathExpr):
  `$(NAME)` becomes the value of a variable defined before it, an undefined reference stays
  as written, `$$` is a literal `$`.
- `container_env`: a container's `env` list resolved in order, as the kubelet does:
  literal values (expanded), `fieldRef` from the downward API (values the test gives),
  `secretKeyRef` / `configMapKeyRef` from the Secrets and ConfigMaps the test gives.
"""


class KubeletError(Exception):
    pass


def expand(text, env):
    """`$(VAR)` expansion as k8s.io/kubernetes third_party/forked/golang/expansion."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c != "$" or i + 1 == n:
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            close = text.find(")", i + 2)
            if close == -1:
                out.append(text[i:])
                break
            name = text[i + 2:close]
            out.append(env[name] if name in env else text[i:close + 1])
            i = close + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


# Downward API fields a container's env may name (fieldRef.fieldPath).
FIELDS = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
          "spec.serviceAccountName", "status.hostIP", "status.podIP", "status.podIPs")


def container_env(container, fields, secrets=None, configmaps=None):
    """Name -> value, in the order of the spec. `fields`: downward API path -> value;
    `secrets` / `configmaps`: name -> {key: str value}. A reference to something absent
    fails, unless it is `optional`."""
    secrets, configmaps = secrets or {}, configmaps or {}
    env = {}
    for e in container.get("env", []):
        name = e["name"]
        if "value" in e:
            env[name] = expand(str(e["value"]), env)
            continue
        src = e.get("valueFrom", {})
        if "fieldRef" in src:
            path = src["fieldRef"]["fieldPath"]
            if path not in FIELDS:
                raise KubeletError(f"env {name}: fieldRef {path} is not a downward API field")
            if path not in fields:
                raise KubeletError(f"env {name}: the test gives no value for {path}")
            env[name] = fields[path]
        elif "secretKeyRef" in src or "configMapKeyRef" in src:
            kind = "secretKeyRef" if "secretKeyRef" in src else "configMapKeyRef"
            ref = src[kind]
            store = secrets if kind == "secretKeyRef" else configmaps
            obj = store.get(ref["name"])
            if obj is None or ref["key"] not in obj:
                if ref.get("optional"):
                    continue
                raise KubeletError(f"env {name}: {kind} {ref['name']}/{ref['key']} does not exist")
            env[name] = obj[ref["key"]]
        else:
            raise KubeletError(f"env {name}: unsupported source {sorted(src)}")
    return env
