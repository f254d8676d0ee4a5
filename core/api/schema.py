"""OpenAPI post-processing: every operation documents the contract's error answers."""

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "code": {"type": "string"},
        "detail": {"type": "string"},
        "errors": {"type": "object", "additionalProperties": True},
    },
    "required": ["code", "detail"],
}

COMMON_ERRORS = {
    "400": "Malformed or invalid input.",
    "401": "Not authenticated.",
    "403": "Not allowed.",
    "404": "Not found.",
    "405": "Method not allowed.",
    "413": "Request body too large.",
    "415": "Unsupported media type.",
    "429": "Rate limited; see Retry-After.",
}
WRITE_ERRORS = {
    "409": "Conflict: a business rule refused the request (the code says which).",
    "422": "The Idempotency-Key was used for a different request.",
    "503": "A dependency is briefly unavailable.",
}


def add_error_responses(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            errors = {**COMMON_ERRORS, **(WRITE_ERRORS if method in {"post", "put", "patch", "delete"} else {})}
            responses = operation.setdefault("responses", {})
            for status, description in errors.items():
                responses.setdefault(status, {"description": description, **error})
            for status, response in responses.items():
                if status[0] in "45" and "content" not in response:
                    response.update(error)
    return result
