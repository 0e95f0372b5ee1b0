"""The one atomic-write helper: the old file survives a failed write; nothing temporary is left."""

import threading

import pytest

from stpatch.atomic import atomic_path, write_bytes, write_json, write_text


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "run" / "eval.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text('{"a": 2, "half')
            raise RuntimeError("crash mid-write")
    assert target.read_text() == '{\n  "a": 1\n}'
    assert sorted(p.name for p in target.parent.iterdir()) == ["eval.json"]


def test_temporary_keeps_the_suffix_and_nothing_written_is_an_error(tmp_path):
    with atomic_path(tmp_path / "fig.png") as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path and tmp.name.startswith(".")
        tmp.write_bytes(b"png")
    with pytest.raises(FileNotFoundError, match="nothing was written"):
        with atomic_path(tmp_path / "empty.txt"):
            pass
    assert not (tmp_path / "empty.txt").exists()


def test_threads_writing_one_path_never_share_a_temporary(tmp_path):
    target = tmp_path / "shared.txt"
    payloads = [f"thread {i} " * 2000 for i in range(8)]
    barrier = threading.Barrier(len(payloads))

    def work(text):
        barrier.wait()
        for _ in range(20):
            write_text(target, text)

    threads = [threading.Thread(target=work, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert target.read_text() in payloads  # one whole payload, never a mix
    assert [p.name for p in tmp_path.iterdir()] == ["shared.txt"]
    assert write_bytes(tmp_path / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
