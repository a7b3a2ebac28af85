"""Artifact folders on small plain files: atomic writes, the manifest, its content hash, every refusal."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from classifier import ArtifactError
from classifier.artifact import MANIFEST, verify_artifact, write_artifact


def fill_two_files(folder: Path) -> None:
    (folder / "sub").mkdir()
    (folder / "a.json").write_text('{"a": 1}')
    (folder / "sub" / "b.safetensors").write_bytes(b"\x00\x01")


def refused(folder: Path, *says: str) -> None:
    with pytest.raises(ArtifactError) as caught:
        verify_artifact(folder)
    for text in says:
        assert text in caught.value.message


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    target = tmp_path / "art"
    write_artifact(target, fill_two_files)
    return target


def test_manifest_lists_every_file_and_content_hash_is_sha256sum_of_them(artifact: Path) -> None:
    manifest = json.loads((artifact / MANIFEST).read_text())
    digests = {
        name: hashlib.sha256((artifact / name).read_bytes()).hexdigest()
        for name in ("a.json", "sub/b.safetensors")
    }
    assert manifest["files"] == digests
    sha256sum = "".join(f"{digests[name]}  {name}\n" for name in sorted(digests))
    assert manifest["content_hash"] == hashlib.sha256(sha256sum.encode()).hexdigest()
    assert verify_artifact(artifact) == manifest["content_hash"]


def test_content_hash_depends_on_content_only(tmp_path: Path) -> None:
    first = write_artifact(tmp_path / "one", fill_two_files)
    assert write_artifact(tmp_path / "two", fill_two_files) == first

    def other(folder: Path) -> None:
        fill_two_files(folder)
        (folder / "a.json").write_text('{"a": 2}')

    assert write_artifact(tmp_path / "three", other) != first


def test_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    def crash(folder: Path) -> None:
        (folder / "half.json").write_text("{")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_artifact(tmp_path / "art", crash)
    assert list(tmp_path.iterdir()) == []


def test_existing_target_needs_overwrite(artifact: Path) -> None:
    with pytest.raises(FileExistsError):
        write_artifact(artifact, fill_two_files)
    write_artifact(artifact, lambda folder: (folder / "new.json").write_text("{}"), overwrite=True)
    assert sorted(p.name for p in artifact.iterdir()) == [MANIFEST, "new.json"]
    assert sorted(p.name for p in artifact.parent.iterdir()) == ["art"]


def test_tampered_file_is_named(artifact: Path) -> None:
    (artifact / "sub" / "b.safetensors").write_bytes(b"\x00\x02")
    refused(artifact, "sub/b.safetensors", "does not match its sha256")


def test_added_file_is_named(artifact: Path) -> None:
    (artifact / "sub" / "extra.json").write_text("{}")
    refused(artifact, "sub/extra.json", "not listed")


def test_missing_file_is_named(artifact: Path) -> None:
    (artifact / "a.json").unlink()
    refused(artifact, "a.json", "missing")


def test_missing_manifest_is_refused(artifact: Path) -> None:
    (artifact / MANIFEST).unlink()
    refused(artifact, MANIFEST, "missing")


def test_edited_manifest_is_refused(artifact: Path) -> None:
    manifest = json.loads((artifact / MANIFEST).read_text())
    manifest["files"]["a.json"] = "0" * 64
    (artifact / MANIFEST).write_text(json.dumps(manifest))
    refused(artifact, "content_hash does not match")
    (artifact / MANIFEST).write_text("[1, 2]")
    refused(artifact, "'files' mapping")


@pytest.mark.parametrize(
    "name", ["model_head.pkl", "x.pickle", "sub/pytorch_model.bin", "w.PT", "w.pth", "h.joblib"]
)
def test_pickle_formats_are_refused_by_name(artifact: Path, name: str) -> None:
    (artifact / name).write_bytes(b"whatever")
    refused(artifact, name, "pickle")


def test_symlink_is_refused(artifact: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere.json").write_text("{}")
    os.symlink(tmp_path / "elsewhere.json", artifact / "link.json")
    refused(artifact, "link.json", "symbolic link")


def test_not_a_folder_is_refused(tmp_path: Path) -> None:
    refused(tmp_path / "absent", "is not a folder")


def test_verify_copies_fine(artifact: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(artifact, tmp_path / "copy")
    assert verify_artifact(copy) == verify_artifact(artifact)
