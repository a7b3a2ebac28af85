"""Staged writes on real files: a target is the old one or the new one, never half of either, and nothing
of the staging is left behind."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from database.files import file_sha256, publish_folder, staged_file, staged_folder, staging_folder


def fill(folder: Path, text: str) -> None:
    (folder / "weights").write_text(text)
    (folder / "nested").mkdir()
    (folder / "nested" / "config.json").write_text(f'{{"v": "{text}"}}')


def contents(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def old_target(tmp_path: Path) -> Path:
    target = tmp_path / "target"
    target.mkdir()
    fill(target, "old")
    return target


def test_a_new_folder_appears_whole(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "target"
    with staged_folder(target) as staging:
        assert staging.parent == target.parent and staging.name.startswith(".target.")
        fill(staging, "new")
        assert not target.exists()
    assert contents(target) == {"nested/config.json": '{"v": "new"}', "weights": "new"}
    assert [p.name for p in target.parent.iterdir()] == ["target"]


def test_a_failure_mid_write_leaves_the_old_folder_and_no_staging(tmp_path: Path) -> None:
    target = old_target(tmp_path)
    with pytest.raises(RuntimeError, match="on fire"), staged_folder(target, existing="replace") as staging:
        (staging / "weights").write_text("half")
        raise RuntimeError("disk on fire")
    assert contents(target) == {"nested/config.json": '{"v": "old"}', "weights": "old"}
    assert [p.name for p in tmp_path.iterdir()] == ["target"]


def test_a_failure_on_a_new_target_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), staged_folder(tmp_path / "target") as staging:
        (staging / "weights").write_text("half")
        raise RuntimeError("disk on fire")
    assert list(tmp_path.iterdir()) == []


def test_replace_swaps_the_old_folder_for_the_new_one(tmp_path: Path) -> None:
    target = old_target(tmp_path)
    with staged_folder(target, existing="replace") as staging:
        (staging / "weights").write_text("new")
    assert contents(target) == {"weights": "new"}  # the old folder's other files went with it
    assert [p.name for p in tmp_path.iterdir()] == ["target"]


def test_refuse_refuses_an_existing_target_before_anything_is_written(tmp_path: Path) -> None:
    target = old_target(tmp_path)
    with pytest.raises(FileExistsError, match="already exists"), staged_folder(target):
        pytest.fail("the body ran")
    assert contents(target)["weights"] == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["target"]


def test_a_target_that_appears_meanwhile_is_refused_or_kept(tmp_path: Path) -> None:
    target = tmp_path / "target"
    with pytest.raises(FileExistsError, match="not replacing"), staged_folder(target) as staging:
        (staging / "weights").write_text("ours")
        old_target(tmp_path)  # another writer's folder lands first
    with staged_folder(target, existing="keep") as staging:
        (staging / "weights").write_text("ours")
    assert contents(target)["weights"] == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["target"]


def test_a_failed_swap_puts_the_old_folder_back(tmp_path: Path) -> None:
    target = old_target(tmp_path)
    with staging_folder(tmp_path, "target") as staging:
        staging.rmdir()  # gone before it is published (say, cleaned up by someone else): the rename fails
        with pytest.raises(FileNotFoundError):
            publish_folder(staging, target, existing="replace")
    assert contents(target)["weights"] == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["target"]


def test_keep_publishes_when_the_target_is_free_and_says_so(tmp_path: Path) -> None:
    target = tmp_path / "abc123"
    with staging_folder(tmp_path, "version") as staging:
        fill(staging, "new")
        assert publish_folder(staging, target, existing="keep") is True
    with staging_folder(tmp_path, "version") as staging:
        fill(staging, "other")
        assert publish_folder(staging, target, existing="keep") is False
    assert contents(target)["weights"] == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["abc123"]


def test_a_staged_file_replaces_its_target_in_one_step(tmp_path: Path) -> None:
    target = tmp_path / "current.json"
    target.write_text('{"version": "old"}')
    with staged_file(target) as staging:
        staging.write_text('{"version": "new"}')
        assert target.read_text() == '{"version": "old"}'
    assert target.read_text() == '{"version": "new"}'
    with pytest.raises(RuntimeError), staged_file(target) as staging:
        staging.write_text('{"vers')
        raise RuntimeError("crash")
    assert target.read_text() == '{"version": "new"}'
    assert [p.name for p in tmp_path.iterdir()] == ["current.json"]


def test_file_sha256_is_sha256sum(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"x" * (3 << 20))
    assert file_sha256(path) == hashlib.sha256(b"x" * (3 << 20)).hexdigest()
