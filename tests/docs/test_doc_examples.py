#!/usr/bin/env python3
"""Configurations the documentation shows for copying pass `smtplb check`.

Every fenced block after a `<!-- example: check -->` line in docs/*.md is a
whole configuration file. It must pass `smtplb check` without an error or a
warning, and `smtplb audit --offline` without a finding, with only what names
this machine's files changed: state_dir and tracking_log become the test's
own directory, and TLS certificate and key paths a certificate made here.

    python3 tests/docs/test_doc_examples.py --smtplb build/src/app/smtplb
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DOCS = os.path.join(ROOT, "docs")
SMTPLB = None

def examples():
    """[(file name, line, text)] for every marked block in docs/*.md."""
    found = []
    for name in sorted(os.listdir(DOCS)):
        if not name.endswith(".md"):
            continue
        with open(os.path.join(DOCS, name), encoding="utf-8") as f:
            text = f.read()
        for m in re.finditer(r"<!--\s*example:\s*check\s*-->\s*```[a-z]*\n(.*?)```", text, re.S):
            found.append((name, text.count("\n", 0, m.start()) + 1, m.group(1)))
    return found


def localised(text, workdir, cert, key):
    """The example with this machine's paths, each replacement one that the
    example really needs (else the block changed and the test would check
    something else)."""
    text, n = re.subn(r'(?m)^state_dir = ".*"$', f'state_dir = "{workdir}"', text)
    if n != 1:
        raise AssertionError("an example configuration sets state_dir once")
    os.makedirs(os.path.join(workdir, "log"), exist_ok=True)
    text = re.sub(r'(?m)^tracking_log = ".*"$',
                  f'tracking_log = "{workdir}/log/tracking.jsonl"', text)
    text = re.sub(r'\bcert = "[^"]*"', f'cert = "{cert}"', text)
    text = re.sub(r'\bkey = "[^"]*\.(key|pem)"', f'key = "{key}"', text)
    return text


def certificate(workdir):
    cert, key = os.path.join(workdir, "cert.pem"), os.path.join(workdir, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365",
                    "-subj", "/CN=relay.example", "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class DocExamples(unittest.TestCase):
    def test_there_are_examples(self):
        names = {name for name, _, _ in examples()}
        self.assertIn("limits.md", names)  # the tenants' worked configuration

    def test_every_example_passes_check_and_the_offline_audit(self):
        with tempfile.TemporaryDirectory() as workdir:
            cert, key = certificate(workdir)
            for name, line, text in examples():
                with self.subTest(example=f"{name}:{line}"):
                    path = os.path.join(workdir, f"{name}-{line}.toml")
                    with open(path, "w", encoding="utf-8") as f:
                        f.write(localised(text, workdir, cert, key))
                    r = subprocess.run([SMTPLB, "check", "-q", "--config", path],
                                       capture_output=True, text=True, timeout=60)
                    findings = r.stderr.splitlines()
                    self.assertEqual((r.returncode, findings), (0, []), r.stderr)
                    a = subprocess.run([SMTPLB, "audit", "--offline", "--config", path],
                                       capture_output=True, text=True, timeout=60)
                    self.assertEqual(a.returncode, 0, a.stdout + a.stderr)
                    self.assertEqual(a.stdout.strip(),
                                     "0 problems, 0 warnings, 0 notes (configuration only)",
                                     a.stdout)


def main():
    global SMTPLB
    parser = argparse.ArgumentParser()
    parser.add_argument("--smtplb", required=True)
    args, rest = parser.parse_known_args()
    SMTPLB = args.smtplb
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
