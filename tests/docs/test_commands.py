#!/usr/bin/env python3
"""The manual page smtplb(1) and docs/commands.md name every command and
option the binary has, and none it does not.

The binary's own `--help` (CLI11's, made from the same definitions that
parse the command line) is the reference:

- every subcommand of `smtplb --help` has a line in smtplb(1)'s SYNOPSIS
  and a row in docs/commands.md, each naming every long option of that
  subcommand's `--help`;
- every option smtplb(1)'s SYNOPSIS gives a command is one its `--help`
  lists;
- smtplb(1) has an EXIT STATUS section.

    python3 tests/docs/test_commands.py --smtplb build/src/app/smtplb
"""
import argparse
import os
import re
import subprocess
import sys
import unittest

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
MAN_PAGE = os.path.join(ROOT, "docs", "smtplb.1")
COMMANDS = os.path.join(ROOT, "docs", "commands.md")
SMTPLB = None



def run_help(*args):
    r = subprocess.run([SMTPLB, *args, "--help"], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise AssertionError("smtplb %s --help: exit %d\n%s" % (" ".join(args), r.returncode,
                                                               r.stderr))
    return r.stdout


def subcommands():
    text = run_help()
    section = text.split("Subcommands:", 1)[1]
    return re.findall(r"^  (\S+)\s", section, re.M)


def long_options(command):
    options = set(re.findall(r"(?:^|[\s,])(--[a-z][a-z0-9-]*)", run_help(command)))
    options.discard("--help")
    return options


def man_text():
    with open(MAN_PAGE, encoding="utf-8") as f:
        return f.read()


def synopsis_options():
    """{command: set of --options} from smtplb(1)'s SYNOPSIS."""
    text = man_text()
    synopsis = text.split(".SH SYNOPSIS", 1)[1].split(".SH ", 1)[0].replace("\\-", "-")
    found = {}
    for part in re.split(r"(?=^\.B smtplb )", synopsis, flags=re.M):
        m = re.match(r"\.B smtplb ([a-z][a-z-]*)", part)
        if m:
            found[m.group(1)] = set(re.findall(r"(--[a-z][a-z0-9-]*)", part))
    return found


def commands_md_rows():
    """{command: row text} for docs/commands.md's table of commands."""
    rows = {}
    with open(COMMANDS, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"\| `smtplb ([a-z][a-z-]*)", line)
            if m:
                rows[m.group(1)] = line
    return rows


class Commands(unittest.TestCase):
    def test_every_command_and_option_is_in_the_man_page(self):
        synopsis = synopsis_options()
        self.assertGreaterEqual(len(synopsis), 11, synopsis)
        for command in subcommands():
            self.assertIn(command, synopsis, "smtplb(1)'s SYNOPSIS has no line for " + command)
            missing = sorted(long_options(command) - synopsis[command])
            self.assertEqual(missing, [], "smtplb(1)'s SYNOPSIS of %s lacks %s"
                             % (command, missing))

    def test_the_man_page_names_no_option_the_binary_lacks(self):
        known = set(subcommands())
        for command, options in synopsis_options().items():
            self.assertIn(command, known, "smtplb(1) names a command smtplb does not have")
            extra = sorted(options - long_options(command))
            self.assertEqual(extra, [], "smtplb(1) gives %s options it does not take: %s"
                             % (command, extra))

    def test_every_command_and_option_is_in_commands_md(self):
        rows = commands_md_rows()
        for command in subcommands():
            self.assertIn(command, rows, "docs/commands.md has no row for smtplb " + command)
            missing = sorted(o for o in long_options(command) if o not in rows[command])
            self.assertEqual(missing, [], "docs/commands.md's row for %s lacks %s"
                             % (command, missing))

    def test_the_man_page_has_an_exit_status(self):
        text = man_text()
        self.assertIn(".SH EXIT STATUS", text)
        section = text.split(".SH EXIT STATUS", 1)[1].split(".SH ", 1)[0]
        for status in ("0", "1", "2", "64", "70"):
            self.assertRegex(section, r"\.B %s\n" % status)


def main():
    global SMTPLB
    parser = argparse.ArgumentParser()
    parser.add_argument("--smtplb", required=True)
    args, rest = parser.parse_known_args()
    SMTPLB = args.smtplb
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
