#!/usr/bin/env python3
"""brs_kb.tsv from BRS-KB 4.0.2 (PyPI `brs-kb`, MIT), an XSS payload knowledge base.

    pip download --no-deps brs-kb==4.0.2 && unzip -q brs_kb-4.0.2-py3-none-any.whl -d brs
    PYTHONPATH=brs make_brs_kb_tsv.py > brs_kb.tsv

Every payload of the knowledge base (`brs_kb.get_all_payloads()`), once each, labelled
`xss`; `source` is `brs-kb:CONTEXT:ID`, CONTEXT the first context the entry names
(`html_content`, `javascript`, `url`, ...). Nothing was removed, before or after scoring.
"""
import brs_kb


def escaped(s: str) -> str:
    return "".join(
        f"%{c:02X}" if c == 0x25 or not 0x20 <= c < 0x7F else chr(c) for c in s.encode("utf-8")
    )


def main():
    print("label\tpayload\tsource")
    seen = set()
    for key, entry in brs_kb.get_all_payloads().items():
        payload = entry.get("payload", "")
        if not payload or payload in seen:
            continue
        seen.add(payload)
        context = (entry.get("contexts") or ["none"])[0]
        print(f"xss\t{escaped(payload)}\tbrs-kb:{context}:{key}")


if __name__ == "__main__":
    main()
