"""The report page is written as every other output is: whole, or not at all."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from flooding import report


def test_a_report_write_that_fails_half_way_leaves_the_last_report(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "render", lambda *args: "<html>the new report</html>")
    out = tmp_path / "report.html"
    out.write_text("<html>the last report</html>")
    write_text = Path.write_text

    def half_then_disk_full(self: Path, text: str, *args, **kwargs) -> int:
        write_text(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", half_then_disk_full)
    with pytest.raises(OSError, match="disk full"):
        report.build_report(pd.DataFrame(), pd.DataFrame(), out)
    monkeypatch.undo()
    assert out.read_text() == "<html>the last report</html>"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temporary file left
