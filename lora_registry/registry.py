"""The registry: name checks, folder validation and persistence behind one object built at startup."""

from __future__ import annotations

import builtins
import logging
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from lora_registry.base_model import BaseModelInfo
from lora_registry.composite import COMPOSITIONS_FOLDER, plan_composite
from lora_registry.composition import CompositionError, check_parts
from lora_registry.errors import (
    AdapterExistsError,
    AdapterLimitError,
    AdapterNotFoundError,
    AdapterPathError,
    RegistryError,
)
from lora_registry.spec import AdapterRegistration, AdapterSpec, ComposePart, check_adapter_name
from lora_registry.store import AdapterStore
from lora_registry.validation import ValidatedAdapter, validate_adapter_folder

logger = logging.getLogger(__name__)


class RegistryFile(BaseModel):
    """The YAML seed file: ``adapters: [{name, path, description?, defaults?}, ...]``."""

    model_config = ConfigDict(extra="forbid")

    adapters: list[AdapterRegistration]


class AdapterRegistry:
    """Registered adapters of one base model. Every failing call leaves the store as it was.

    Reads (``find``, ``get``, ``list``, ``names``) answer from a snapshot in memory, so a request never waits
    on the database: this process's writes replace it as they land, and ``refresh`` re-reads the store for
    what other routers on a shared database wrote.
    """

    def __init__(
        self,
        store: AdapterStore,
        *,
        adapter_root: Path,
        base: BaseModelInfo,
        max_rank: int,
        reserved_names: set[str],
        max_adapters: int | None = None,
        max_adapter_bytes: int | None = None,
    ) -> None:
        self.store = store
        self.adapter_root = adapter_root
        self.base = base
        self.max_rank = max_rank
        self.max_adapters = max_adapters
        self.max_adapter_bytes = max_adapter_bytes
        # The base model's own name always stays reserved: as a `model` it must mean "no adapter".
        self.reserved_names = {*reserved_names, base.name}
        # Serializes writes in this process so a seed file lands all-or-nothing between registrations.
        self._write_lock = threading.RLock()
        # Replaced whole, never changed in place: a reader holds one consistent dict without a lock.
        self._known: dict[str, AdapterSpec] = {}
        self.refresh()

    def refresh(self) -> bool:
        """Re-read the store into the snapshot; True when it changed. Blocking I/O: off the event loop."""
        with self._write_lock:
            known = {spec.name: spec for spec in self.store.list()}
            changed = known != self._known
            self._known = known
        return changed

    def register(self, reg: AdapterRegistration) -> AdapterSpec:
        with self._write_lock:
            validated = self._check(reg)
            spec = self.store.add(**_fields(reg, validated))
            self._known = {**self._known, spec.name: spec}
        logger.info(
            "registered adapter %s (id %d, rank %d) from %s", spec.name, spec.id, spec.rank, spec.path
        )
        return spec

    def unregister(self, name: str) -> builtins.list[AdapterSpec]:
        """Remove the adapter ``name`` and the registered compositions made from it; returns them, it
        first."""
        with self._write_lock:
            removed = [spec] if (spec := self.store.remove(name)) is not None else []
            for other in self.store.list() if removed else ():
                if any(part.adapter == name for part in other.composition or ()):
                    if (made := self.store.remove(other.name)) is not None:
                        removed.append(made)
            gone = {name} | {each.name for each in removed}
            self._known = {known: each for known, each in self._known.items() if known not in gone}
        if not removed:
            raise AdapterNotFoundError(name, self.names())
        for each in removed:
            logger.info("unregistered adapter %s (id %d)", each.name, each.id)
        return removed

    def get(self, name: str) -> AdapterSpec:
        spec = self._known.get(name)
        if spec is None:
            raise AdapterNotFoundError(name, self.names())
        return spec

    def find(self, name: str) -> AdapterSpec | None:
        return self._known.get(name)

    def find_stored(self, name: str) -> AdapterSpec | None:
        """``find``, asking the store when the snapshot does not know ``name`` (another router on a shared
        database may have registered it since the last refresh). Blocking I/O on a miss."""
        if (spec := self._known.get(name)) is not None:
            return spec
        # Under the write lock, so an unregistration here cannot land between the read and the update.
        with self._write_lock:
            spec = self.store.get(name)
            if spec is not None:
                self._known = {**self._known, spec.name: spec}
        return spec

    # Below this method, `list` in the class body names it: annotations there say builtins.list.
    def list(self) -> list[AdapterSpec]:
        return sorted(self._known.values(), key=lambda spec: spec.id)

    def names(self) -> builtins.list[str]:
        return [spec.name for spec in self.list()]

    def folders(self, max_depth: int = 3) -> builtins.list[tuple[str, str | None]]:
        """Adapter folders under the root (they hold ``adapter_config.json``), as paths relative to it, each
        with the name registered from it, if any: what an operator can pick from to register."""
        root = self.adapter_root.resolve()
        used = {spec.path.resolve(): spec.name for spec in self.store.list()}
        found: list[tuple[str, str | None]] = []
        for config in sorted(root.glob("**/adapter_config.json")):
            folder = config.parent
            relative = folder.relative_to(root)
            # Links are skipped: registration refuses folders that lead out of the root anyway. Hidden folders
            # hold the service's own files (the identity adapter of remote engines).
            hidden = any(part.startswith(".") for part in relative.parts)
            if len(relative.parts) <= max_depth and not folder.is_symlink() and not hidden:
                found.append((relative.as_posix(), used.get(folder.resolve())))
        return found

    def seed_from_yaml(self, path: Path) -> builtins.list[AdapterSpec]:
        """Register the file's adapters that are not registered yet; returns the newly registered ones.

        Names already present are skipped, so restarts keep what was registered at runtime. Every new entry
        is validated before any is stored: a bad file raises RegistryError(param="registry_file") and
        registers nothing.
        """
        try:
            return self._seed(path)
        except AdapterExistsError:
            # Another router replica on the same database stored the same file's entries meanwhile: the
            # second round skips what it stored.
            return self._seed(path)

    def _seed(self, path: Path) -> builtins.list[AdapterSpec]:
        entries = _read_registry_file(path)
        with self._write_lock:
            pending: list[tuple[AdapterRegistration, ValidatedAdapter]] = []
            for index, reg in enumerate(entries):
                if self.store.get(reg.name) is not None:
                    logger.info("registry file %s: adapter %s already registered, kept as is", path, reg.name)
                    continue
                try:
                    pending.append((reg, self._check(reg, pending=len(pending))))
                except AdapterExistsError:
                    raise  # stored by another replica since the line above: seed_from_yaml goes round again
                except RegistryError as exc:
                    raise RegistryError(
                        f"registry file {path}, adapter #{index + 1} ({reg.name!r}), field {exc.param}: "
                        f"{exc.message}",
                        param="registry_file",
                    ) from exc
            added = self.store.add_all([_fields(reg, validated) for reg, validated in pending])
            self.refresh()
        for spec in added:
            logger.info("registered adapter %s (id %d) from registry file %s", spec.name, spec.id, path)
        return added

    def _check(self, reg: AdapterRegistration, *, pending: int = 0) -> ValidatedAdapter:
        """Validate ``reg``; ``pending`` counts registrations checked but not stored yet (a seed file)."""
        check_adapter_name(reg.name, self.reserved_names)
        # A cheap early answer; the store's UNIQUE constraint is what really guards the name.
        if self.store.get(reg.name) is not None:
            raise AdapterExistsError(reg.name)
        if self.max_adapters is not None and len(self.store.list()) + pending >= self.max_adapters:
            raise AdapterLimitError(self.max_adapters)
        if reg.compose is not None:
            if reg.path is not None:
                raise CompositionError("give `path` or `compose`, not both", param="compose")
            path = str(self._write_composition(reg.name, reg.compose))
        elif reg.path is None:
            raise AdapterPathError("give `path`, the adapter folder under the adapter root, or `compose`")
        else:
            path = reg.path
        return validate_adapter_folder(
            path,
            adapter_root=self.adapter_root,
            base=self.base,
            max_rank=self.max_rank,
            max_bytes=self.max_adapter_bytes,
        )

    def _write_composition(self, name: str, compose: builtins.list[ComposePart]) -> Path:
        """The folder of the composition's adapter, written when it is not there yet."""
        what = f"composition {name!r}"
        parts = check_parts(compose, what, param="compose")
        specs = []
        for part in parts:
            if (spec := self.store.get(part.adapter)) is None:
                raise CompositionError.unknown_part(what, part.adapter, self.names(), param="compose")
            specs.append(spec)
        plan = plan_composite(
            parts, specs, base_model=self.base.name, max_rank=self.max_rank, param="compose"
        )
        return plan.write(self.adapter_root / COMPOSITIONS_FOLDER)


def _fields(reg: AdapterRegistration, validated: ValidatedAdapter) -> dict[str, Any]:
    """What the store keeps of a checked registration."""
    return {
        "name": reg.name,
        "path": validated.path,
        "base_model": validated.base_model,
        "rank": validated.rank,
        "alpha": validated.alpha,
        "target_modules": validated.target_modules,
        "size_bytes": validated.size_bytes,
        "description": reg.description,
        "defaults": reg.defaults,
        "examples": reg.examples,
        "created_at": int(time.time()),
        "composition": reg.compose,
    }


def _read_registry_file(path: Path) -> list[AdapterRegistration]:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise RegistryError(f"cannot read registry file {path}: {exc}", param="registry_file") from None
    except yaml.YAMLError as exc:
        raise RegistryError(f"registry file {path} is not valid YAML: {exc}", param="registry_file") from None
    try:
        entries = RegistryFile.model_validate(data).adapters
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<file>'}: {err['msg']}" for err in exc.errors()
        )
        raise RegistryError(
            f"registry file {path} must hold `adapters: [{{name, path, description?, defaults?}}, ...]`: "
            f"{problems}",
            param="registry_file",
        ) from None
    names = [reg.name for reg in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RegistryError(
            f"registry file {path} lists adapter names more than once: {', '.join(duplicates)}",
            param="registry_file",
        )
    return entries
