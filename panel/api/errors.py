"""Service-layer errors as API answers: bad input 400 with per-field messages, conflicts 409,
an agent that cannot be asked 503, one that does not answer in time 504, its own error 502."""

from __future__ import annotations

from typing import Any

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from panel.fleet.dispatch import AgentError, AgentUnavailable
from panel.workloads.services import Conflict
from panel.workloads.spec import ValidationFailed


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ValidationFailed):
        return Response(exc.errors, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Conflict):
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, AgentUnavailable):
        code = status.HTTP_504_GATEWAY_TIMEOUT if exc.timed_out else \
            status.HTTP_503_SERVICE_UNAVAILABLE
        return Response({"detail": str(exc)}, status=code)
    if isinstance(exc, AgentError):
        return Response({"detail": str(exc)}, status=status.HTTP_502_BAD_GATEWAY)
    return drf_exception_handler(exc, context)
