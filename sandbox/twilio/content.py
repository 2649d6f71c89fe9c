"""Content templates (Twilio's Content API) as the sandbox knows them: the profile's approved ones.

A message created with `ContentSid` (and `ContentVariables`, a JSON object such as
`{"1": "CXP-0123456789"}`) carries the template's text with `{{1}}`-style variables filled in;
that text is the message's `body` and what the brand reads. A variable the request leaves out
keeps its `{{n}}`: the sandbox has no sample values to fall back on, and a visible gap is easier
to spot than a made-up value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from sandbox.messaging_profile import TEMPLATE_VARIABLE

# Twilio's error codes for a bad ContentSid and bad ContentVariables.
INVALID_CONTENT_SID = 21655
INVALID_CONTENT_VARIABLES = 21656


class ContentError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def render(templates: Mapping[str, str], content_sid: str, variables: str | None) -> str:
    """The text of template content_sid with variables filled in; ContentError when invalid."""
    template = templates.get(content_sid)
    if template is None:
        raise ContentError(
            INVALID_CONTENT_SID,
            f"The ContentSid is Invalid: {content_sid} is not an approved template of this "
            "account (the sandbox profile's messaging.templates)",
        )
    values = _variables(variables)

    def fill(found: re.Match[str]) -> str:
        return values.get(found.group(1), found.group(0))

    return TEMPLATE_VARIABLE.sub(fill, template)


def _variables(raw: str | None) -> dict[str, str]:
    if raw is None:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError as err:
        raise ContentError(
            INVALID_CONTENT_VARIABLES,
            f"The ContentVariables Parameter is invalid: not JSON ({err})",
        ) from err
    if not isinstance(parsed, dict) or not all(
        isinstance(v, str | int | float) and not isinstance(v, bool) for v in parsed.values()
    ):
        raise ContentError(
            INVALID_CONTENT_VARIABLES,
            "The ContentVariables Parameter is invalid: expected a JSON object of strings, "
            'like {"1": "CXP-0123456789"}',
        )
    return {str(k): str(v) for k, v in parsed.items()}
