"""The README and docs/*.md tell one story a newcomer can follow: every relative link
and #heading reference resolves, the README stays short, and its quick-start commands
are the ones CI runs."""

import re

from conftest import ROOT

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
DEMO_COMMAND = "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/facelatch demo"
TEST_COMMAND = 'python3 -m venv .venv && .venv/bin/pip install ".[dev]" && .venv/bin/python -m pytest -q'


def _docs():
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    h = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", h).replace(" ", "-")


def anchors(path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)  # '#' lines in code blocks are not headings
    return {slug(m) for m in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


def broken_links(path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    bad = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            bad.append(f"{path.name}: {target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{path.name}: {target} (no such heading)")
    return bad


def test_every_relative_link_and_heading_reference_resolves():
    assert [p for p in _docs() if p.parent.name == "docs"], "docs/*.md missing"
    assert [b for p in _docs() for b in broken_links(p)] == []


def test_link_check_catches_a_broken_file_and_a_broken_heading(tmp_path):
    (tmp_path / "b.md").write_text("# Real heading (2026)\n")
    (tmp_path / "a.md").write_text("[ok](b.md#real-heading-2026) [gone](c.md) [bad](b.md#nope) [web](https://x.org/y)\n"
                                   "```\n[in code](zzz.md)\n# not a heading\n```\n")
    assert broken_links(tmp_path / "a.md") == ["a.md: c.md (no such file)", "a.md: b.md#nope (no such heading)"]


def test_readme_is_short_and_keeps_the_quick_start_commands_ci_runs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert DEMO_COMMAND in readme and TEST_COMMAND in readme
    assert TEST_COMMAND in (ROOT / ".ci" / "run").read_text()
    for doc in ("how-it-works", "daemon", "raspberry-pi", "security", "home-assistant", "workstation", "ci"):
        assert f"(docs/{doc}.md)" in readme, doc


def test_no_developer_folders_in_the_docs():
    for p in _docs():
        assert "/work/" not in p.read_text(), p.name
