"""The one way the shop reads a JSON body it was sent."""

import json

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError


def json_parse(data: bytes | str):
    """The JSON document in `data`. Raises ValueError for anything that is not one, nested
    too deep for Python's parser included (json raises RecursionError there, which is no
    ValueError): so every caller's `except ValueError` holds against hostile input."""
    try:
        return json.loads(data)
    except RecursionError as error:
        raise ValueError("JSON nested too deeply") from error


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, reading with `json_parse`: a hostile body is a 400 `parse_error`."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json_parse(stream.read().decode(encoding)) if stream is not None else None
        except (ValueError, UnicodeDecodeError) as error:
            raise ParseError(f"JSON parse error - {error}") from error
