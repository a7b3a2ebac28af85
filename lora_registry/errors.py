"""Registry failures, shaped so the API can answer each with OpenAI's error JSON.

Every error carries the HTTP status, a machine-readable ``code`` and the ``param`` (request field or adapter
file field) at fault; messages name that field so a client can fix the request without reading our logs.
"""

from __future__ import annotations


class ApiError(Exception):
    """The one base of every error a client of the service sees, the registry's and the serving layer's: the
    HTTP status, a machine-readable ``code``, the request field at fault (``param``) and any headers the
    status calls for (WWW-Authenticate, Retry-After). The service renders each in OpenAI's error shape. It
    lives here, the lowest of the service's packages, so that both hierarchies can share it."""

    status_code: int = 400
    code: str | None = None
    headers: dict[str, str] | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, param={self.param!r}, code={self.code!r})"


class RegistryError(ApiError):
    code = "registry_error"


class RegistryUnavailableError(RegistryError):
    """The registry's database cannot be reached (shared registry on PostgreSQL)."""

    status_code = 503
    code = "registry_unavailable"


class AdapterValidationError(RegistryError):
    """The adapter folder exists but its content cannot be served on this base model."""

    status_code = 422
    code = "invalid_adapter"


class AdapterPathError(RegistryError):
    """The adapter path is malformed, missing, or leaves the adapter root."""

    status_code = 400
    code = "invalid_adapter_path"

    def __init__(self, message: str, *, param: str | None = "path") -> None:
        super().__init__(message, param=param)


class InvalidAdapterNameError(RegistryError):
    status_code = 400
    code = "invalid_adapter_name"

    def __init__(self, message: str) -> None:
        super().__init__(message, param="name")


class AdapterExistsError(RegistryError):
    status_code = 409
    code = "adapter_exists"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"an adapter named {name!r} is already registered; unregister it first or choose another name",
            param="name",
        )
        self.name = name


class AdapterLimitError(RegistryError):
    status_code = 422
    code = "too_many_adapters"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"{limit} adapters are registered, the most this service accepts; unregister one first",
            param="name",
        )


class AdapterTooLargeError(RegistryError):
    status_code = 413
    code = "adapter_too_large"

    def __init__(self, path: str, size: int, limit: int) -> None:
        super().__init__(
            f"adapter folder {path!r} holds {size} bytes; at most {limit} are accepted", param="path"
        )


class AdapterNotFoundError(RegistryError):
    """Lists what is registered, so a typo is obvious from the error alone."""

    status_code = 404
    # OpenAI's code for an unknown `model`, which is how clients name adapters.
    code = "model_not_found"

    def __init__(self, name: str, available: list[str], *, param: str | None = "name") -> None:
        listing = ", ".join(repr(n) for n in available) if available else "none"
        super().__init__(f"adapter {name!r} is not registered; registered adapters: {listing}", param=param)
        self.name = name
        self.available = available
