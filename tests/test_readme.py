"""README.md: its route table is one table, what it links to is in the repository, and it
stops the embedded database with the command made for it, not a pattern kill."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_the_route_table_is_one_table() -> None:
    lines = README.splitlines()
    start = lines.index("| | |")
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
    routes = lines[start:end]
    assert any("/health" in row for row in routes) and any("/runs" in row for row in routes)
    route = re.compile(r"^\| `(GET|POST|PUT|PATCH|DELETE)")
    assert not any(route.match(line) for line in lines[end:]), "a route row after the table ended"


def test_the_files_it_refers_to_are_in_the_repository() -> None:
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if not target.startswith(("http://", "https://")):
            assert (ROOT / target).exists(), target
    assert not re.search(r"(?<!\.)\.\./\w", README), "a path outside the repository"
    assert (ROOT / "docs" / "DESIGN.md").exists()


def test_it_documents_the_port_and_db_stop_and_no_pattern_kill() -> None:
    assert "PORT=" in README and "evalledger db stop" in README
    assert "pkill" not in README and "killall" not in README
