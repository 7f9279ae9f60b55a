#!/usr/bin/env python3
"""purewaf.tsv: the command-injection bypass candidates PureWaf 2.1.2 generates.

    pip download --no-deps purewaf==2.1.2 && unzip -q purewaf-2.1.2-py3-none-any.whl -d purewaf
    PYTHONPATH=purewaf make_purewaf_tsv.py > purewaf.tsv

PureWaf (PyPI `purewaf`, Apache-2.0, by Pure Stream) builds the payloads a CTF player or
pentester tries against a filter in front of `system()`/`eval()`: file reads through
two hundred shell idioms (`tac`, `nl`, `od`, `$(<file)`, `while read`), globs, quote and
backslash splices, `${IFS}`, a command's name cut into variables and joined
(`i=ec;u=h;c=o; $i$u$c ...| $g$r$k$o -d| $w$p`), backticks in PHP, octal ANSI-C
quotes, and PHP that builds a function's name from other bytes. Its own generator
(`bypass.generate_candidate_records`) is called with a target file `/etc/passwd`, the
environment and a reverse shell to 10.0.0.9:4444 asked for, phpinfo, PHP 7.0; every
candidate once, labelled `cmdi`; `source` is `purewaf:TECHNIQUES`. The variable
splits are random: the generator is seeded (0) so the file can be made again.
"""
import random

from PureWaf import bypass


def escaped(s: str) -> str:
    return "".join(
        f"%{c:02X}" if c == 0x25 or not 0x20 <= c < 0x7F else chr(c) for c in s.encode("utf-8")
    )


def main():
    options = bypass.BypassOptions(
        flagfile="/etc/passwd",
        read_env=True,
        reflect_shell=True,
        ip="10.0.0.9",
        port=4444,
        phpinfo=True,
        php_version=7.0,
        upload=False,
    )
    random.seed(0)
    print("label\tpayload\tsource")
    seen = set()
    for record in bypass.generate_candidate_records(options):
        if record.payload in seen:
            continue
        seen.add(record.payload)
        print(f"cmdi\t{escaped(record.payload)}\tpurewaf:{'+'.join(record.techniques)}")


if __name__ == "__main__":
    main()
