"""The OpenAPI schema says what every operation may answer, errors included, so that clients (and schemathesis)
can rely on it."""

from drf_spectacular.openapi import AutoSchema

from .serializers import ErrorSerializer, ValidationErrorSerializer

ERRORS_ANY = {
    "400": (ValidationErrorSerializer, "a bad value: the message names it and what is accepted"),
    "401": (ErrorSerializer, "no credentials, or a token that is unknown, expired or revoked"),
    "403": (ErrorSerializer, "your role (or a read-only token) does not allow this"),
    "404": (ErrorSerializer, "no such object, or not one you may see"),
}
ERRORS_CHANGE = {
    "409": (ErrorSerializer, "another operation on the domain is under way, the host lacks room, or a name is taken"),
    "503": (ErrorSerializer, "the host is unreachable"),
}


class ApiSchema(AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        errors = dict(ERRORS_ANY)
        if self.method not in ("GET", "HEAD", "OPTIONS"):
            errors.update(ERRORS_CHANGE)
        for code, (serializer, description) in errors.items():
            if code not in responses:
                response = self._get_response_for_code(serializer, code, direction=direction)
                response["description"] = description
                responses[code] = response
        return responses
