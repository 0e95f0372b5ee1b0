"""`write_section`: the benchmark sections of BENCHMARKS.md are replaced in place (on temporary files only)."""

from __future__ import annotations

from stpatch.bench.report import write_section


def test_write_section_appends_then_replaces_only_its_own_section(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\nHand-written notes stay.\n")
    write_section("los_loop", "| model | MAE |\n| stid | 2.9 |\n", path)
    write_section("era5", "ERA5 table", path)
    assert path.read_text() == (
        "# Benchmarks\n\nHand-written notes stay.\n\n"
        "<!-- bench:los_loop -->\n| model | MAE |\n| stid | 2.9 |\n<!-- /bench:los_loop -->\n\n"
        "<!-- bench:era5 -->\nERA5 table\n<!-- /bench:era5 -->\n"
    )
    # a new run of one suite replaces its section where it stands; the others and the notes are kept
    write_section("los_loop", r"new \1 table with $ and \g<0>", path)
    assert path.read_text() == (
        "# Benchmarks\n\nHand-written notes stay.\n\n"
        "<!-- bench:los_loop -->\nnew \\1 table with $ and \\g<0>\n<!-- /bench:los_loop -->\n\n"
        "<!-- bench:era5 -->\nERA5 table\n<!-- /bench:era5 -->\n"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["BENCHMARKS.md"]  # written atomically, nothing left over


def test_write_section_starts_a_missing_file_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_section("chickenpox", "table")
    assert (tmp_path / "BENCHMARKS.md").read_text() == (
        "# Benchmarks\n\n<!-- bench:chickenpox -->\ntable\n<!-- /bench:chickenpox -->\n"
    )
