#!/usr/bin/env python3
"""Converts CustomResourceDefinitions into JSON Schema files for offline validation.

For every served version of every CRD given, writes
``<out>/<kind lower>-<group's first label>-<version>.json`` (e.g.
``externalsecret-external-secrets-v1.json``): the version's ``openAPIV3Schema`` with

- ``apiVersion`` and ``kind`` pinned to that group/version and kind;
- OpenAPI's ``nullable: true`` turned into a ``null`` type;
- strictness as kubectl's server-side field validation has it: an object that declares
  ``properties`` and neither ``additionalProperties`` nor
  ``x-kubernetes-preserve-unknown-fields`` refuses unknown fields (so a typo in a manifest
  fails here, as it would fail ``kubectl apply``).

CEL rules (``x-kubernetes-validations``) are not evaluated.

Usage, from a clone of the CRDs' repository (the ESO schemas in deploy/schemas/eso/ were
made this way; the commit is in deploy/schemas/eso/README.md):

    python3 deploy/test/crd_to_schema.py --git-dir ESO_CLONE/.git --rev COMMIT \\
        --out deploy/schemas/eso config/crds/bases/external-secrets.io_externalsecrets.yaml ...

or with CRD files on disk: ``crd_to_schema.py --out DIR FILE.yaml ...``.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml


def strict(node):
    """Returns a copy of an OpenAPI v3 schema node as JSON Schema (see the module doc)."""
    if isinstance(node, list):
        return [strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict(v) for k, v in node.items()}
    if out.pop("nullable", False):
        t = out.get("type")
        if isinstance(t, str):
            out["type"] = [t, "null"]
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def convert(crd):
    """Yields (file name, schema) for each served version of one CRD."""
    spec = crd["spec"]
    group, kind = spec["group"], spec["names"]["kind"]
    for v in spec["versions"]:
        if not v.get("served", False):
            continue
        schema = strict(v["schema"]["openAPIV3Schema"])
        props = schema.setdefault("properties", {})
        props["apiVersion"] = {"type": "string", "enum": [f"{group}/{v['name']}"]}
        props["kind"] = {"type": "string", "enum": [kind]}
        # metadata is checked by the API server, not the CRD: a name is all we ask for.
        props["metadata"] = {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string", "minLength": 1}},
        }
        schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
        schema["$schema"] = "http://json-schema.org/draft-07/schema#"
        schema["title"] = f"{kind} ({group}/{v['name']})"
        name = f"{kind.lower()}-{group.split('.')[0]}-{v['name']}.json"
        yield name, schema


def read(path, git_dir, rev):
    if git_dir:
        return subprocess.run(
            ["git", "--git-dir", git_dir, "show", f"{rev}:{path}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    return Path(path).read_text()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="directory for the JSON schemas")
    ap.add_argument("--git-dir", help="read the CRD paths from this git directory")
    ap.add_argument("--rev", default="HEAD", help="commit to read them at (with --git-dir)")
    ap.add_argument("crds", nargs="+", help="CRD YAML files (paths in the repository with --git-dir)")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in a.crds:
        for doc in yaml.safe_load_all(read(path, a.git_dir, a.rev)):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            for name, schema in convert(doc):
                # One line: generated data, compared by tools rather than read.
                (out / name).write_text(json.dumps(schema, sort_keys=True, separators=(",", ":")) + "\n")
                print(f"{path} -> {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
