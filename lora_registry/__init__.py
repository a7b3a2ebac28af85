"""Adapter registry: validated PEFT LoRA folders with stable integer ids, kept in SQLite or PostgreSQL."""

from lora_registry.base_model import BaseModelInfo
from lora_registry.errors import (
    AdapterExistsError,
    AdapterLimitError,
    AdapterNotFoundError,
    AdapterPathError,
    AdapterTooLargeError,
    AdapterValidationError,
    ApiError,
    InvalidAdapterNameError,
    RegistryError,
)
from lora_registry.open_store import open_adapter_store
from lora_registry.registry import AdapterRegistry
from lora_registry.spec import (
    AdapterRegistration,
    AdapterSpec,
    ComposePart,
    GenerationDefaults,
    check_adapter_name,
)
from lora_registry.store import AdapterStore, SqliteAdapterStore
from lora_registry.validation import ValidatedAdapter, validate_adapter_folder

__all__ = [
    "AdapterExistsError",
    "ApiError",
    "AdapterLimitError",
    "AdapterNotFoundError",
    "AdapterPathError",
    "AdapterTooLargeError",
    "AdapterRegistration",
    "AdapterRegistry",
    "AdapterSpec",
    "AdapterStore",
    "AdapterValidationError",
    "BaseModelInfo",
    "ComposePart",
    "GenerationDefaults",
    "InvalidAdapterNameError",
    "RegistryError",
    "SqliteAdapterStore",
    "ValidatedAdapter",
    "check_adapter_name",
    "open_adapter_store",
    "validate_adapter_folder",
]
