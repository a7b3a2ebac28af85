"""Errors the serving layer raises, and their rendering in OpenAI's error shape."""

from __future__ import annotations

from http import HTTPStatus

from lora_registry.errors import ApiError
from router.protocol import ErrorInfo, ErrorResponse


class ServingError(ApiError):
    """What the serving layer refuses or cannot do; the registry's errors share the base."""


class InvalidRequestError(ServingError):
    status_code = HTTPStatus.BAD_REQUEST
    code = "invalid_request"


class AuthenticationError(ServingError):
    status_code = HTTPStatus.UNAUTHORIZED
    code = "invalid_api_key"
    headers = {"WWW-Authenticate": "Bearer"}


class PermissionDeniedError(ServingError):
    status_code = HTTPStatus.FORBIDDEN
    code = "insufficient_scope"


class ModelNotFoundError(ServingError):
    status_code = HTTPStatus.NOT_FOUND
    code = "model_not_found"


class RouterBusyError(ServingError):
    status_code = HTTPStatus.CONFLICT
    code = "router_training_in_progress"


class RouterUnavailableError(ServingError):
    status_code = HTTPStatus.CONFLICT
    code = "no_router"


class TrainingRejectedError(ServingError):
    status_code = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "invalid_training_data"


class OverloadedError(ServingError):
    status_code = HTTPStatus.TOO_MANY_REQUESTS
    code = "overloaded"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after_s)}


class EngineUnavailableError(ServingError):
    status_code = HTTPStatus.SERVICE_UNAVAILABLE
    code = "engine_unavailable"

    def __init__(self, message: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        if retry_after_s is not None:
            self.headers = {"Retry-After": str(retry_after_s)}


def error_type(status_code: int) -> str:
    if status_code == HTTPStatus.UNAUTHORIZED:
        return "authentication_error"
    if status_code == HTTPStatus.FORBIDDEN:
        return "permission_error"
    if status_code == HTTPStatus.TOO_MANY_REQUESTS:
        return "rate_limit_error"
    if status_code >= 500:
        return "server_error"
    return "invalid_request_error"


def error_response(
    status_code: int, message: str, *, param: str | None = None, code: str | None = None
) -> ErrorResponse:
    return ErrorResponse(
        error=ErrorInfo(message=message, type=error_type(status_code), param=param, code=code)
    )
