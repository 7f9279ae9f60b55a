#!/usr/bin/env python3
"""Held-out DLP rows (`dlp_faker.tsv`): secrets and look-alikes the DLP scanner was not
tuned on, made by other people's generators, in the corpora's format
(`label<TAB>payload<TAB>source<TAB>kind<TAB>value`).

- Cards: Faker's `credit_card_number` for every card type it knows (Visa 13/16/19, Mastercard,
  Amex, Discover, Diners, JCB 15/16, Maestro), written plain, in groups of 4 (Amex 4-6-5),
  with dashes, in sentences, forms, JSON and CSV.
- SSNs: Faker en_US `ssn` (area, group and serial in the SSA's ranges), dashed.
- E-mail: Faker's `email`, `company_email`, `free_email`, `ascii_safe_email` of several
  locales (so `ä` in a display name, `+tag` and dotted local parts).
- AWS access key ids: `AKIA`/`ASIA` and 16 characters of base32 (the documented format;
  no generator of real ones exists).
- Private keys: fresh keys from `openssl genpkey` (RSA, EC, Ed25519, PKCS#8 plain and
  encrypted), `openssl genrsa -traditional`, `openssl ec` (SEC1) and `ssh-keygen` (OpenSSH
  RSA and Ed25519), `puttygen` (PuTTY .ppk v2 and v3, one with a passphrase; ssh.com's
  `---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----`) and `gpg` (armored secret keys), throwaway
  keys made for this file, whole or cut after the header.
- Benign: what DLP must not flag: Faker's phone numbers, MSISDNs, EAN-13s, ISBNs, IBANs,
  BBANs, UUIDs, dates, IPv4 and MAC addresses, licence plates, hashes, user agents, URLs,
  card expiry dates and CVVs, prose with numbers; card numbers with the Luhn check broken;
  SSNs in ranges the SSA never issues (000, 666, 9xx, group 00, serial 0000); `AKIA`
  followed by lower case or too few characters; public keys and certificates.

`python3 make_dlp_faker.py > dlp_faker.tsv` (Faker 40.x from PyPI, openssl, ssh-keygen,
Debian's putty-tools and gpg;
seeded, but the private keys are fresh on every run).
"""

import json
import os
import random
import subprocess
import sys
import tempfile

from faker import Faker

SEED = 20261204
random.seed(SEED)
fake = Faker(["en_US", "de_DE", "fr_FR", "ja_JP", "pt_BR"])
Faker.seed(SEED)
en = fake["en_US"]

rows = []


def esc(s: str) -> str:
    out = []
    for b in s.encode():
        if b == 0x25 or b < 0x20 or b == 0x7F or b >= 0x80:
            out.append("%%%02X" % b)
        else:
            out.append(chr(b))
    return "".join(out)


def add(label, payload, source, kind, value):
    rows.append((label, esc(payload), "faker:" + source, kind, esc(value)))


def place(value: str) -> tuple[str, str]:
    """The value in one of several surroundings; returns (payload, shape)."""
    shape = random.choice(["sentence", "form", "json", "csv", "header", "bare"])
    if shape == "sentence":
        return f"{en.sentence()} {value} {en.sentence()}", shape
    if shape == "form":
        return f"name={en.first_name()}&value={value}&submit=1", shape
    if shape == "json":
        return json.dumps({"user": en.user_name(), "data": value, "n": en.pyint()}), shape
    if shape == "csv":
        return f"id,name,value\n{en.pyint()},{en.last_name()},{value}\n", shape
    if shape == "header":
        return f"X-Data: {value}", shape
    return value, shape


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c)
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def grouped(num: str, sep: str, amex: bool) -> str:
    if amex and len(num) == 15:
        parts = [num[:4], num[4:10], num[10:]]
    else:
        parts = [num[i : i + 4] for i in range(0, len(num), 4)]
    return sep.join(parts)


CARD_TYPES = ["visa16", "visa13", "visa19", "mastercard", "amex", "discover", "diners",
              "jcb15", "jcb16", "maestro"]

for i in range(400):
    t = CARD_TYPES[i % len(CARD_TYPES)]
    num = en.credit_card_number(card_type=t)
    sep = random.choice(["", " ", "-"])
    value = grouped(num, sep, t == "amex") if sep else num
    payload, shape = place(value)
    add("credit_card", payload, f"credit_card_number({t}):{i}", f"card/{t}/{shape}", value)
    # The same digits with the check digit changed: not a card.
    bad = num[:-1] + str((int(num[-1]) + 1 + random.randrange(8)) % 10)
    if luhn_ok(bad):
        continue
    value = grouped(bad, sep, t == "amex") if sep else bad
    payload, shape = place(value)
    add("benign", payload, f"broken_luhn({t}):{i}", f"decoy/card/{t}/{shape}", value)

for i in range(200):
    v = en.ssn()
    payload, shape = place(v)
    add("ssn", payload, f"ssn:{i}", f"ssn/{shape}", v)
for i, v in enumerate(["000-12-3456", "666-12-3456", "912-34-5678", "123-00-4567",
                       "123-45-0000", "987-65-4321", "900-11-2222"]):
    payload, shape = place(v)
    add("benign", payload, f"never_issued_ssn:{i}", f"decoy/ssn/{shape}", v)

mails = []
for i in range(200):
    loc = fake[random.choice(["en_US", "de_DE", "fr_FR", "pt_BR"])]
    v = random.choice([loc.email, loc.company_email, loc.free_email, loc.ascii_safe_email])()
    if random.random() < 0.2:
        user, dom = v.split("@")
        v = f"{user}+{en.word()}@{dom}"
    payload, shape = place(v)
    add("email", payload, f"email:{i}", f"email/{shape}", v)

B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
for i in range(100):
    v = random.choice(["AKIA", "ASIA"]) + "".join(random.choice(B32) for _ in range(16))
    surround = random.choice([
        lambda v: f"aws_access_key_id = {v}\naws_secret_access_key = {en.sha1()[:40]}\n",
        lambda v: f"export AWS_ACCESS_KEY_ID={v}",
        lambda v: json.dumps({"AccessKeyId": v, "Expiration": en.iso8601()}),
        lambda v: place(v)[0],
    ])
    add("aws_access_key", surround(v), f"aws_key:{i}", "aws/key", v)
for i in range(20):
    v = "AKIA" + en.pystr(min_chars=16, max_chars=16).lower()
    payload, shape = place(v)
    add("benign", payload, f"akia_lower:{i}", f"decoy/aws/{shape}", v)
    v = "AKIA" + "".join(random.choice(B32) for _ in range(random.randrange(6, 14)))
    payload, shape = place(v)
    add("benign", payload, f"akia_short:{i}", f"decoy/aws/{shape}", v)

with tempfile.TemporaryDirectory() as d:
    def run(*cmd):
        subprocess.run(cmd, cwd=d, check=True, capture_output=True)

    def read(name):
        with open(os.path.join(d, name)) as f:
            return f.read()

    keys = []
    for n in range(3):
        run("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", f"rsa{n}.pem")
        run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", f"ec{n}.pem")
        run("openssl", "genpkey", "-algorithm", "ED25519", "-out", f"ed{n}.pem")
        run("openssl", "genrsa", "-traditional", "-out", f"trad{n}.pem", "1024")
        run("openssl", "ec", "-in", f"ec{n}.pem", "-out", f"sec1_{n}.pem")
        run("openssl", "pkcs8", "-topk8", "-in", f"rsa{n}.pem", "-out", f"enc{n}.pem", "-passout", "pass:heldout")
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "heldout", "-f", f"ssh_ed{n}")
        run("ssh-keygen", "-q", "-t", "rsa", "-b", "1024", "-N", "", "-C", "heldout", "-f", f"ssh_rsa{n}")
        run("openssl", "req", "-new", "-x509", "-key", f"rsa{n}.pem", "-subj", f"/CN={en.domain_name()}",
            "-days", "1", "-out", f"cert{n}.pem")
        run("openssl", "pkey", "-in", f"ec{n}.pem", "-pubout", "-out", f"pub{n}.pem")
        # PuTTY (.ppk version 3 and 2, plain and with a passphrase), ssh.com's format
        # by puttygen, GnuPG secret keys; their public halves as look-alikes.
        with open(os.path.join(d, "pass"), "w") as f:
            f.write("heldout\n")
        run("puttygen", "-q", "-t", "ed25519", "-C", "heldout", "-o", f"putty3_{n}.ppk",
            "--new-passphrase", "/dev/null")
        run("puttygen", "-q", "-t", "rsa", "-b", "1024", "--ppk-param", "version=2", "-C", "heldout",
            "-o", f"putty2_{n}.ppk", "--new-passphrase", "/dev/null")
        run("puttygen", "-q", "-t", "ecdsa", "-b", "256", "-o", f"putty_enc{n}.ppk",
            "--new-passphrase", "pass")
        run("puttygen", "-q", f"putty2_{n}.ppk", "-O", "private-sshcom", "-o", f"sshcom{n}")
        run("puttygen", "-q", f"putty3_{n}.ppk", "-O", "public", "-o", f"putty_pub{n}")
        home = os.path.join(d, f"gpg{n}")
        os.mkdir(home, 0o700)
        gpg = ["gpg", "--homedir", home, "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
        run(*gpg, "--quick-gen-key", f"heldout{n} <heldout{n}@example.test>", "ed25519", "sign", "1d")
        with open(os.path.join(d, f"gpg_sec{n}.asc"), "wb") as f:
            f.write(subprocess.run([*gpg, "--armor", "--export-secret-keys"], check=True,
                                   capture_output=True).stdout)
        with open(os.path.join(d, f"gpg_pub{n}.asc"), "wb") as f:
            f.write(subprocess.run([*gpg, "--armor", "--export"], check=True,
                                   capture_output=True).stdout)
        for name in [f"rsa{n}.pem", f"ec{n}.pem", f"ed{n}.pem", f"trad{n}.pem", f"sec1_{n}.pem",
                     f"enc{n}.pem", f"ssh_ed{n}", f"ssh_rsa{n}", f"putty3_{n}.ppk", f"putty2_{n}.ppk",
                     f"putty_enc{n}.ppk", f"sshcom{n}", f"gpg_sec{n}.asc"]:
            keys.append((name, read(name)))
        for name in [f"cert{n}.pem", f"pub{n}.pem", f"ssh_ed{n}.pub", f"ssh_rsa{n}.pub",
                     f"putty_pub{n}", f"gpg_pub{n}.asc"]:
            v = read(name)
            add("benign", v, f"public:{name}", "decoy/public_key", v.splitlines()[0])
    for i, (name, pem) in enumerate(keys):
        header = pem.splitlines()[0]
        for shape in ["pem", "json", "cut"]:
            if shape == "pem":
                payload = f"{en.sentence()}\n{pem}"
            elif shape == "json":
                payload = json.dumps({"name": name, "key": pem})
            else:
                # Only the header and the first line of the body.
                payload = "\n".join(pem.splitlines()[:2])
            add("private_key", payload, f"key:{name}:{shape}", f"key/{shape}", header)

benign_makers = {
    "phone_number": lambda: fake.phone_number(),
    "msisdn": lambda: en.msisdn(),
    "ean13": lambda: en.ean13(),
    "isbn13": lambda: en.isbn13(),
    "isbn10": lambda: en.isbn10(),
    "iban": lambda: fake.iban(),
    "bban": lambda: en.bban(),
    "uuid4": lambda: en.uuid4(),
    "date_time": lambda: str(en.date_time()),
    "ipv4": lambda: en.ipv4(),
    "ipv6": lambda: en.ipv6(),
    "mac": lambda: en.mac_address(),
    "license_plate": lambda: fake.license_plate(),
    "sha256": lambda: en.sha256(),
    "md5": lambda: en.md5(),
    "user_agent": lambda: en.user_agent(),
    "url": lambda: en.url(),
    "card_expire": lambda: en.credit_card_expire(),
    "card_cvv": lambda: en.credit_card_security_code(),
    "address": lambda: fake.address(),
    "paragraph": lambda: fake.paragraph(nb_sentences=4),
    "numbers": lambda: " ".join(str(en.pyint(max_value=10**random.randrange(3, 12))) for _ in range(5)),
    "timestamp": lambda: str(en.unix_time()),
    "zip": lambda: en.zipcode(),
    "ein": lambda: en.ein(),
    "itin": lambda: en.itin(),
}
for name, make in benign_makers.items():
    for i in range(30):
        v = make()
        payload, shape = place(v)
        add("benign", payload, f"{name}:{i}", f"benign/{name}/{shape}", v)

print("label\tpayload\tsource\tkind\tvalue")
for r in rows:
    print("\t".join(r))
print(f"{len(rows)} rows", file=sys.stderr)
