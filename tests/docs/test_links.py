#!/usr/bin/env python3
"""Every relative link in README.md and docs/*.md resolves.

A link to a file must name a file of the repository; a link with #anchor
must name a heading of the page it points to (GitHub's anchors: lower case,
punctuation dropped, spaces as hyphens). Links inside code are not links.
External links (http:, https:, mailto:) are not fetched.

Also: the README stays a front page (at most 15 KB).

    python3 tests/docs/test_links.py
"""
import glob
import os
import re
import sys
import tempfile
import unittest

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
README_LIMIT = 15 * 1024



def pages():
    return [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))


def without_code(text):
    """The text with fenced blocks and code spans blanked (line numbers kept)."""
    text = re.sub(r"^```.*?^```", lambda m: "\n" * m.group(0).count("\n"), text,
                  flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "``", text)


def slug(heading):
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path):
    found = set()
    counts = {}
    with open(path, encoding="utf-8") as f:
        text = re.sub(r"^```.*?^```", "", f.read(), flags=re.S | re.M)
    for m in re.finditer(r"^#{1,6}\s+(.*?)\s*#*\s*$", text, re.M):
        base = slug(m.group(1))
        n = counts.get(base, 0)
        counts[base] = n + 1
        found.add(base if n == 0 else "%s-%d" % (base, n))
    for m in re.finditer(r'<a\s+(?:name|id)="([^"]+)"', text):
        found.add(m.group(1))
    return found


def links(path):
    with open(path, encoding="utf-8") as f:
        text = without_code(f.read())
    for m in re.finditer(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text):
        yield text.count("\n", 0, m.start()) + 1, m.group(1)


def broken_links(page_list=None, root=ROOT):
    problems = []
    for page in page_list or pages():
        where = os.path.relpath(page, root)
        for line, target in links(page):
            if re.match(r"[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(page), file_part)) \
                if file_part else page
            rel = os.path.relpath(dest, root)
            if not os.path.exists(dest):
                problems.append("%s:%d: %s: no such file %s" % (where, line, target, rel))
                continue
            if rel.startswith(".."):
                problems.append("%s:%d: %s: outside the repository" % (where, line, target))
            if anchor and dest.endswith(".md") and anchor not in anchors(dest):
                problems.append("%s:%d: %s: %s has no heading with anchor #%s"
                                % (where, line, target, rel, anchor))
    return problems


class Links(unittest.TestCase):
    def test_relative_links_resolve(self):
        problems = broken_links()
        self.assertEqual(problems, [], "\n" + "\n".join(problems))

    def test_the_checker_finds_a_broken_link(self):
        # Guards the test above against passing because it reads nothing.
        self.assertGreater(sum(1 for p in pages() for _ in links(p)), 50)
        self.assertIn("five-minute-quick-start", anchors(os.path.join(ROOT, "README.md")))
        self.assertEqual(slug("The transaction engine's cost (issue 23)"),
                         "the-transaction-engines-cost-issue-23")
        with tempfile.TemporaryDirectory() as tmp:
            page = os.path.join(tmp, "page.md")
            with open(page, "w") as f:
                f.write("# Page\n\n## A part\n\n[ok](#a-part) [ok](page.md) `[code](x.md)`\n"
                        "[gone](missing.md) [bad anchor](page.md#nowhere)\n")
            problems = broken_links([page], tmp)
        self.assertEqual(len(problems), 2, problems)
        self.assertIn("missing.md", problems[0])
        self.assertIn("#nowhere", problems[1])

    def test_readme_is_a_front_page(self):
        size = os.path.getsize(os.path.join(ROOT, "README.md"))
        self.assertLessEqual(size, README_LIMIT, "README.md is %d bytes; move detail to docs/"
                             % size)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
