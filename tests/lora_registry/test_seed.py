"""Seeding the registry from a YAML file at startup: idempotent, and all-or-nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lora_registry import (
    AdapterRegistration,
    AdapterRegistry,
    AdapterSpec,
    BaseModelInfo,
    GenerationDefaults,
    RegistryError,
    SqliteAdapterStore,
)
from tests.lora_registry.crafting import edit_config, make_registry

GOOD = """
adapters:
  - name: alpha
    path: alpha
    description: Answers like a pirate.
    defaults:
      system_prompt: You are a pirate.
      stop: ["###"]
      temperature: 0.3
      max_tokens: 128
  - name: beta
    path: beta
"""


def write(tmp_path: Path, text: str) -> Path:
    file = tmp_path / "registry.yaml"
    file.write_text(text)
    return file


def test_seed_registers_entries_with_their_defaults(registry: AdapterRegistry, tmp_path: Path) -> None:
    added = registry.seed_from_yaml(write(tmp_path, GOOD))
    assert [spec.name for spec in added] == ["alpha", "beta"]
    assert registry.list() == added
    alpha = registry.get("alpha")
    assert alpha.description == "Answers like a pirate."
    assert alpha.defaults == GenerationDefaults(
        system_prompt="You are a pirate.", stop=["###"], temperature=0.3, max_tokens=128
    )
    assert registry.get("beta").defaults == GenerationDefaults()


def test_seed_is_idempotent_and_keeps_runtime_state_across_restarts(
    registry: AdapterRegistry, tmp_path: Path, db_path: Path, adapter_root: Path, base_info: BaseModelInfo
) -> None:
    file = write(tmp_path, GOOD)
    first = registry.seed_from_yaml(file)
    assert registry.seed_from_yaml(file) == []
    # Registered at runtime, and one seeded adapter removed at runtime: a restart re-adds only the latter.
    registry.register(AdapterRegistration(name="gamma", path="gamma"))
    registry.unregister("beta")

    store = SqliteAdapterStore(db_path)
    try:
        restarted = make_registry(store, adapter_root, base_info)
        readded = restarted.seed_from_yaml(file)
        assert [spec.name for spec in readded] == ["beta"]
        assert readded[0].id > max(spec.id for spec in first)
        assert restarted.names() == ["alpha", "gamma", "beta"]
        assert restarted.get("alpha") == first[0]
    finally:
        store.close()


def test_entry_already_registered_from_another_path_is_kept(
    registry: AdapterRegistry, tmp_path: Path
) -> None:
    existing = registry.register(AdapterRegistration(name="alpha", path="gamma"))
    added = registry.seed_from_yaml(write(tmp_path, GOOD))
    assert [spec.name for spec in added] == ["beta"]
    assert registry.get("alpha") == existing


def test_empty_adapter_list_registers_nothing(registry: AdapterRegistry, tmp_path: Path) -> None:
    assert registry.seed_from_yaml(write(tmp_path, "adapters: []\n")) == []


MALFORMED = {
    "not yaml": "adapters: [name: alpha\n  - : :",
    "empty file": "",
    "top-level list": "- name: alpha\n  path: alpha\n",
    "no adapters key": "adapter:\n  - name: alpha\n    path: alpha\n",
    "unknown top-level key": GOOD + "extra: 1\n",
    "entry not a mapping": "adapters:\n  - alpha\n",
    "entry without path": "adapters:\n  - name: alpha\n  - name: beta\n    path: beta\n",
    "unknown entry field": "adapters:\n  - name: alpha\n    path: alpha\n    rank: 8\n",
    "unknown defaults field": "adapters:\n  - {name: alpha, path: alpha, defaults: {temprature: 0.2}}\n",
    "temperature out of range": "adapters:\n  - {name: alpha, path: alpha, defaults: {temperature: 5}}\n",
    "duplicate names": GOOD + "  - name: alpha\n    path: gamma\n",
    "bad name in an entry": GOOD + "  - name: ../gamma\n    path: gamma\n",
    "reserved name in an entry": GOOD + "  - name: auto\n    path: gamma\n",
    "missing folder in an entry": GOOD + "  - name: gamma\n    path: nowhere\n",
    "path escaping the root": GOOD + "  - name: gamma\n    path: ../gamma\n",
}


@pytest.mark.parametrize("text", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_file_registers_nothing(registry: AdapterRegistry, tmp_path: Path, text: str) -> None:
    registry.register(AdapterRegistration(name="gamma-runtime", path="gamma"))
    before = registry.list()
    with pytest.raises(RegistryError) as err:
        registry.seed_from_yaml(write(tmp_path, text))
    assert err.value.param == "registry_file"
    assert "registry.yaml" in err.value.message
    assert registry.list() == before


def test_invalid_adapter_in_file_is_named_and_nothing_is_registered(
    registry: AdapterRegistry, tmp_path: Path, adapter_root: Path
) -> None:
    edit_config(adapter_root / "beta", r=64)
    with pytest.raises(RegistryError) as err:
        registry.seed_from_yaml(write(tmp_path, GOOD))
    assert err.value.param == "registry_file"
    assert "#2 ('beta')" in err.value.message and "adapter_config.r" in err.value.message
    assert err.value.__cause__ is not None and err.value.__cause__.status_code == 422
    # alpha came first and was valid, yet it is not registered.
    assert registry.list() == []


def test_missing_file_is_refused(registry: AdapterRegistry, tmp_path: Path) -> None:
    with pytest.raises(RegistryError) as err:
        registry.seed_from_yaml(tmp_path / "absent.yaml")
    assert err.value.param == "registry_file"


class RacedStore(SqliteAdapterStore):
    """The real store, where another process registers 'beta' just before this one stores it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.rival = SqliteAdapterStore(path)

    def add_all(self, entries: list[dict[str, Any]]) -> list[AdapterSpec]:
        for fields in entries:
            if fields["name"] == "beta" and self.rival.get("beta") is None:
                self.rival.add(**fields)
        return super().add_all(entries)


def test_a_seed_raced_by_another_replica_rolls_back_and_registers_the_rest_once(
    tmp_path: Path, adapter_root: Path, base_info: BaseModelInfo
) -> None:
    store = RacedStore(tmp_path / "raced.sqlite3")
    try:
        registry = make_registry(store, adapter_root, base_info)
        added = registry.seed_from_yaml(write(tmp_path, GOOD))
        # The first round's alpha went in the same transaction as the clashing beta and was rolled back (else
        # the second round would have found it stored and added nothing); the rival's beta is kept.
        assert [spec.name for spec in added] == ["alpha"]
        assert sorted(registry.names()) == ["alpha", "beta"]
        assert registry.get("beta").id < registry.get("alpha").id
    finally:
        store.rival.close()
        store.close()


class RacedBeforeCheckStore(SqliteAdapterStore):
    """A real store where a rival replica stores ``beta`` right after this one first looked it up."""

    def __init__(self, path: Path, fields: dict[str, Any]) -> None:
        super().__init__(path)
        self.rival = SqliteAdapterStore(path)
        self.fields = fields

    def get(self, name: str) -> AdapterSpec | None:
        found = super().get(name)
        if name == "beta" and self.rival.get("beta") is None:
            self.rival.add(**self.fields)
        return found


def test_a_seed_raced_between_lookup_and_check_goes_round_again(
    tmp_path: Path, adapter_root: Path, base_info: BaseModelInfo
) -> None:
    # What the rival stores: beta as the same file registers it (so its own fields, not invented ones).
    template = SqliteAdapterStore(tmp_path / "template.sqlite3")
    try:
        make_registry(template, adapter_root, base_info).seed_from_yaml(write(tmp_path, GOOD))
        beta = template.get("beta")
        assert beta is not None
        fields = {key: value for key, value in vars(beta).items() if key != "id"}
    finally:
        template.close()
    store = RacedBeforeCheckStore(tmp_path / "raced.sqlite3", fields)
    try:
        added = make_registry(store, adapter_root, base_info).seed_from_yaml(write(tmp_path, GOOD))
        assert [spec.name for spec in added] == ["alpha"]
        assert sorted(spec.name for spec in store.list()) == ["alpha", "beta"]
    finally:
        store.rival.close()
        store.close()
