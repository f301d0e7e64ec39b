#!/usr/bin/env python3
"""The configuration reference is complete, and the man page made from it current.

docs/configuration.md must have a row for every key the loader accepts, and
no row for a key it does not; docs/smtplb.toml.5 must be what
scripts/gen_config_manpage.py makes of it. Three views of "the keys the
loader accepts", so that none of them alone can hide a key:

- the keys the loader reads, followed from load_string (loader.cpp) through
  every function of src/config/*.cpp it gives a TableReader, and the
  sub-table each reader stands for;
- the keys `smtplb check` prints as the effective configuration;
- the binary itself: a file setting every documented key must draw no
  "unknown key" error (unknown keys are errors, so a documented key that
  does not exist shows up).

    python3 tests/docs/test_config_reference.py --smtplb build/src/app/smtplb
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CONFIG_SOURCES = os.path.join(ROOT, "src", "config")
REFERENCE = os.path.join(ROOT, "docs", "configuration.md")
GENERATOR = os.path.join(ROOT, "scripts", "gen_config_manpage.py")
SMTPLB = None

READ_METHODS = "string|integer|size|duration|strings|choice|boolean|node|table|tables"

# A configuration that passes `check` with the fewest keys, table by table;
# the test adds every other key to it.
BASE_TABLES = [
    ("server", "[server]", ['state_dir = "{state}"', 'tracking_log = ""', 'admin = ""']),
    ("spool", "[spool]", []),
    ("listener", "[[listener]]", ['name = "in"', 'bind = "127.0.0.1:2525"',
                                  'accepted_domains = ["example.net"]', 'pool = "hubs"']),
    ("pool", "[[pool]]", ['name = "hubs"']),
    ("pool.backend", "[[pool.backend]]", ['name = "hub1"', 'address = "127.0.0.1:2526"',
                                          'tls_name = "hub1.example.net"']),
    ("pool.destination_limit", "[[pool.destination_limit]]", ['domain = "example.org"',
                                                              'concurrent_transactions = 1']),
    ("route", "[[route]]", ['recipient_domain = "example.org"', 'pool = "hubs"']),
    ("limit", "[[limit]]", ['name = "per-sender"', 'key = "sender"', 'messages = "10/1m"']),
    ("cluster", "[cluster]", ['redis = "127.0.0.1:6379"']),
]


def config_text(extra=None):
    extra = extra or {}
    return "".join("%s\n%s\n\n" % (header, "\n".join(lines + extra.get(table, [])))
                   for table, header, lines in BASE_TABLES)


BASE_CONFIG = config_text()


def documented_keys():
    """{path: row text} for every row of every key table in docs/configuration.md."""
    keys = {}
    section = None
    with open(REFERENCE, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"\s*<!--\s*keys:\s*(\S+)\s*-->", line)
            if m:
                section = m.group(1)
                continue
            if section and line.startswith("|"):
                cell = re.split(r"(?<!\\)\|", line)[1].strip()
                if cell.lower() == "key" or set(cell) <= set("-: "):
                    continue
                keys[section + "." + cell.strip("`")] = line
            elif section and not line.strip().startswith("|"):
                section = None if line.strip() else section
    return keys


def loader_functions(text):
    """{name: (reader parameter names, body)} for the functions of loader.cpp."""
    functions = {}
    for m in re.finditer(r"^[\w:<>]+(?:\s+[\w:<>&*]+)*\s+(\w+)\(([^)]*)\)\s*\{\n(.*?)^\}",
                         text, re.S | re.M):
        name, params, body = m.group(1), m.group(2), m.group(3)
        readers = re.findall(r"TableReader&\s*(\w+)", params)
        functions[name] = (readers, body)
    return functions


def loader_keys(config_sources=CONFIG_SOURCES):
    """The key paths the loader reads, from load_string (loader.cpp) down
    through the read_* functions of every file in src/config, without array
    indices."""
    functions = {}
    for name in sorted(os.listdir(config_sources)):
        if name.endswith(".cpp"):
            with open(os.path.join(config_sources, name), encoding="utf-8") as f:
                functions.update(loader_functions(f.read()))
    keys = set()
    seen = set()

    def visit(function, reader_paths):
        if (function, tuple(sorted(reader_paths.items()))) in seen:
            return
        seen.add((function, tuple(sorted(reader_paths.items()))))
        _, body = functions[function]
        paths = dict(reader_paths)
        # Readers made here for a sub-table: TableReader NAME(*table, PATH, diagnostics).
        for m in re.finditer(r"TableReader\s+(\w+)\(([^;]*)\);", body):
            name, args = m.group(1), m.group(2)
            sub = re.search(r'(\w+)\.key_path\("(\w+)"\)', args)
            literal = re.search(r',\s*"(\w*)"\s*,', args)
            if sub and sub.group(1) in paths:
                paths[name] = join(paths[sub.group(1)], sub.group(2))
            elif literal:
                paths[name] = literal.group(1)
            elif "key +" in args:
                continue  # read_each's own reader: handled at its call
        for m in re.finditer(r"\b(\w+)\.(%s)\(\s*\"(\w+)\"" % READ_METHODS, body):
            if m.group(1) in paths:
                keys.add(join(paths[m.group(1)], m.group(3)))
        for m in re.finditer(r'\bread_each\(\s*(\w+)\s*,\s*"(\w+)"\s*,[^,]+,\s*(\w+)\s*\)', body):
            if m.group(1) in paths:
                callee = m.group(3)
                visit(callee, {functions[callee][0][0]: join(paths[m.group(1)], m.group(2))})
        # A helper given a reader and a key reads that key: read_names(r, "listener", ...).
        for m in re.finditer(r'\b(\w+)\(\s*(\w+)\s*,\s*"(\w+)"', body):
            if m.group(1) in functions and m.group(1) != "read_each" and m.group(2) in paths:
                keys.add(join(paths[m.group(2)], m.group(3)))
        for m in re.finditer(r"\b(\w+)\(\s*(\w+)\s*[,)]", body):
            callee, reader = m.group(1), m.group(2)
            if callee in functions and callee != "read_each" and reader in paths:
                params = functions[callee][0]
                if params:
                    visit(callee, {params[0]: paths[reader]})

    def join(prefix, key):
        return prefix + "." + key if prefix else key

    visit("load_string", {})
    # Top-level names are the tables themselves ([server], [[listener]], ...).
    return {k for k in keys if "." in k}


def printed_keys(text):
    """Key paths in `smtplb check`'s effective configuration."""
    keys = set()
    section = None
    for line in text.splitlines():
        m = re.match(r"^\[+([\w.]+)\]+$", line.strip())
        if m:
            section = m.group(1)
            continue
        m = re.match(r"^(\w+)\s*=\s*(.*)$", line.strip())
        if not (m and section):
            continue
        keys.add(section + "." + m.group(1))
        if m.group(2).startswith("{"):
            for sub in re.findall(r"(?:\{|,)\s*(\w+)\s*=", m.group(2)):
                keys.add(section + "." + m.group(1) + "." + sub)
    return keys


def run_check(config_text):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "smtplb.toml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(config_text.replace("{state}", tmp))
        r = subprocess.run([SMTPLB, "check", "--config", path], capture_output=True,
                           text=True, timeout=60)
        return r.returncode, r.stdout + r.stderr


def config_with_every_key(documented):
    """BASE_CONFIG plus every documented key not in it, each set to 0.

    Keys of sub-tables go inline into their parent (tls = { mode = 0, ... });
    a table with no rows of its own is set to {}."""
    blocks = {table for table, _, _ in BASE_TABLES}
    base = {table + "." + line.split(" ", 1)[0] for table, _, lines in BASE_TABLES
            for line in lines}
    extra, inline = {}, {}
    for path, row in documented.items():
        table, key = path.rsplit(".", 1)
        if path in base or path in blocks:
            continue
        is_table = re.search(r"\|\s*table\s*\|", row)
        if is_table and any(p.startswith(path + ".") for p in documented):
            continue  # its keys make it
        value = "{}" if is_table else "0"
        if table in blocks:
            extra.setdefault(table, []).append("%s = %s" % (key, value))
        else:
            inline.setdefault(table, []).append("%s = %s" % (key, value))
    for path, keys in inline.items():
        table, key = path.rsplit(".", 1)
        extra.setdefault(table, []).append("%s = { %s }" % (key, ", ".join(keys)))
    return config_text(extra)


class ConfigReference(unittest.TestCase):
    def test_man_page_is_generated_from_the_reference(self):
        r = subprocess.run([sys.executable, GENERATOR, "--check"], capture_output=True,
                           text=True)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_every_key_the_loader_reads_is_documented(self):
        documented = documented_keys()
        read = loader_keys()
        # The walk through loader.cpp must find the keys at all: a change in
        # how the loader is written must not make this test pass vacuously.
        self.assertGreater(len(read), 90, sorted(read))
        for must in ("server.hostname", "listener.tls.mode", "listener.auth.verifier",
                     "pool.health.rcpt_to", "pool.tls.ca_file", "pool.backend.tls_name",
                     "route.recipient", "spool.writers"):
            self.assertIn(must, read)
        missing = sorted(read - set(documented))
        self.assertEqual(missing, [], "keys the loader reads with no row in "
                         "docs/configuration.md: %s" % missing)
        unread = sorted(set(documented) - read)
        self.assertEqual(unread, [], "rows in docs/configuration.md for keys the loader "
                         "does not read: %s" % unread)
        for k in sorted(set(documented) - read):
            print("warning: %s is documented as new and not read by the loader yet" % k)

    def test_every_key_check_prints_is_documented(self):
        status, output = run_check(BASE_CONFIG)
        self.assertEqual(status, 0, output)
        printed = printed_keys(output)
        self.assertGreater(len(printed), 90, output)
        missing = sorted(printed - set(documented_keys()))
        self.assertEqual(missing, [], "keys `smtplb check` prints with no row in "
                         "docs/configuration.md: %s" % missing)

    def test_every_documented_key_is_accepted(self):
        documented = documented_keys()
        text = config_with_every_key(documented)
        _, output = run_check(text)
        unknown = set()
        for m in re.finditer(r"error: ([\w.\[\]]+): unknown key", output):
            unknown.add(re.sub(r"\[\d+\]", "", m.group(1)))
        # The file was read key by key (each 0 draws a type or range error),
        # not refused whole, e.g. as TOML that does not parse.
        self.assertGreater(output.count(": error: "), 50, output)
        self.assertIn("listener[0].tls.mode: must be", output)
        self.assertEqual(sorted(unknown), [], "documented keys that smtplb calls unknown: %s\n%s"
                         % (sorted(unknown), text))


def main():
    global SMTPLB
    parser = argparse.ArgumentParser()
    parser.add_argument("--smtplb", required=True)
    args, rest = parser.parse_known_args()
    SMTPLB = args.smtplb
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
