"""perf/compare's own pieces: its command line, and that it rewrites only its sections of RESULTS.md."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import subprocess
import sys
from pathlib import Path

COMPARE = Path(__file__).resolve().parents[2] / "perf" / "compare"


def load_compare():
    loader = importlib.machinery.SourceFileLoader("perf_compare", str(COMPARE))
    spec = importlib.util.spec_from_loader("perf_compare", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_help_runs_and_names_quick():
    out = subprocess.run([sys.executable, str(COMPARE), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert "--quick" in out.stdout and "--work" in out.stdout


def test_quick_defaults_are_small():
    compare = load_compare()
    quick = compare.parse_args(["--quick"])
    assert quick.big == [1000] and quick.duration == 5.0 and quick.idle == [200]
    full = compare.parse_args([])
    assert full.big == [10000, 100000] and full.idle == [1000, 10000]
    assert compare.section_heading(quick).endswith("— quick") and compare.section_heading(full).endswith("— full")


def test_results_keep_other_sections(tmp_path):
    compare = load_compare()
    path = tmp_path / "RESULTS.md"
    path.write_text("# pymail performance results\n\n## Store\n\nstore figures\n\n"
                    "## Side by side — quick\n\nold table\n\n## Side by side — full\n\nfull table\n\n"
                    "## Later\n\nkept too\n")
    compare.write_results(path, {"## Harness": "## Harness\n\nabout the harness\n\n",
                                 "## Side by side — quick": "## Side by side — quick\n\nnew table\n\n"})
    text = path.read_text()
    assert text.startswith("# pymail performance results\n")
    assert "store figures" in text and "kept too" in text
    assert "new table" in text and "old table" not in text
    assert "full table" in text  # another label's run is kept
    assert text.count("## Harness") == 1 and "about the harness" in text
    assert text.index("## Store") < text.index("## Side by side") < text.index("## Later")


def test_results_file_created_when_missing(tmp_path):
    compare = load_compare()
    path = tmp_path / "RESULTS.md"
    compare.write_results(path, {"## Side by side": "## Side by side\n\nx\n\n"})
    assert path.read_text().startswith("# pymail performance results\n\n## Side by side")


def test_ratio_and_median():
    compare = load_compare()
    assert compare.median_of([{"ops_per_s": 1.0}, {"ops_per_s": 3.0}, {"ops_per_s": 2.0}],
                             lambda r: r["ops_per_s"]) == 2.0
    assert compare.median_of([{"error": "timed out"}], lambda r: 1).startswith("failed")
    cmp = compare.Comparison(compare.parse_args(["--quick"]))
    cmp.add("g", "m", "ops/s", 50.0, 100.0, "higher")
    assert cmp.rows[0]["ratio"] == 0.5


def test_big_mailboxes_come_in_identical_copies_for_the_cold_pass(tmp_path):
    compare = load_compare()
    args = compare.parse_args(["--quick", "--big", "30,40", "--mix-users", "1", "--mix-messages", "2",
                               "--bcrypt-rounds", "4"])
    assert compare.cold_copies(args, 10_000) == 3 and compare.cold_copies(args, 100_000) == 1
    plan = compare.generate(tmp_path, args)
    assert plan["big_users"][30] == ["big30@example.test", "big30-2@example.test", "big30-3@example.test"]
    first, *copies = [compare.user_maildir(plan["mail"], u) / "cur" for u in plan["big_users"][30]]
    names = sorted(p.name for p in first.iterdir())
    assert len(names) == 30
    for cur in copies:
        assert sorted(p.name for p in cur.iterdir()) == names
        assert all((cur / n).read_bytes() == (first / n).read_bytes() for n in names)
        assert all((cur / n).stat().st_mtime == (first / n).stat().st_mtime for n in names)
    passwd = plan["passwd"].read_text()
    assert all(u in passwd for users in plan["big_users"].values() for u in users)
    # other copies asked for: generated afresh, not mixed with the old data
    more = compare.parse_args(["--quick", "--big", "30", "--cold-copies", "2", "--mix-users", "1",
                               "--mix-messages", "2", "--bcrypt-rounds", "4"])
    plan = compare.generate(tmp_path, more)
    assert plan["big_users"][30] == ["big30@example.test", "big30-2@example.test"]
    assert not compare.user_maildir(plan["mail"], "big30-3@example.test").exists()
