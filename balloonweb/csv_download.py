"""CSV downloads of a page's view, streamed row by row, so that a large view is never held in memory."""

import csv
from collections.abc import Iterable

from django.http import StreamingHttpResponse


class _Echo:
    """csv.writer's file: a written row is handed back, to be streamed."""

    def write(self, value: str) -> str:
        return value


def csv_download(header: list[str], rows: Iterable[list], filename: str) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow(row)

    response = StreamingHttpResponse(lines(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
