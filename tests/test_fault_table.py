"""tests/README.md's table of bad inputs and faults: at least 60 rows, each naming a test that exists."""

from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).parent


def test_every_row_names_an_existing_test():
    rows = re.findall(r"^\| \d+ \|.*\| (\S+\.py)::(\w+) \|$", (HERE / "README.md").read_text(), flags=re.M)
    assert len(rows) >= 60
    missing = [(f, t) for f, t in rows if not (HERE / f).is_file()
               or not re.search(rf"^def {t}\(", (HERE / f).read_text(), flags=re.M)]
    assert not missing, missing
