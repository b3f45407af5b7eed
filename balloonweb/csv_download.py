"""CSV downloads of a page's view, streamed row by row, so that a large view is never held in memory.

A download is opened in a spreadsheet, which runs a cell that starts with = + - @ (or a tab or carriage return
before one) as a formula: text that others typed (a user name tried at sign-in, a domain's name on a hypervisor)
would run on the reader's machine. Such text cells get a leading apostrophe, as OWASP advises; numbers stay.
`manage.py audit export` writes the entries as they are, for programs.
"""

import csv
from collections.abc import Iterable

from django.http import StreamingHttpResponse


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _inert(value):
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


class _Echo:
    """csv.writer's file: a written row is handed back, to be streamed."""

    def write(self, value: str) -> str:
        return value


def csv_download(header: list[str], rows: Iterable[list], filename: str) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow([_inert(value) for value in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
