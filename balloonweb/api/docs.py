"""The schema and its documentation page. The Swagger UI assets come from drf-spectacular-sidecar (served as
static files), since the machines that run BalloonWeb need not reach a CDN."""

from types import SimpleNamespace

from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView, _get_sidecar_url


class SchemaView(SpectacularAPIView):
    # Only the API's own routes, whatever else the project serves.
    urlconf = None  # set in urls.py, once the API's patterns exist
    custom_settings = {
        "TITLE": "BalloonWeb API",
        "DESCRIPTION": (
            "Balloon and live-migrate the memory of virtual machines. Memory is in MiB in field names ending in "
            "`_mib`; sizes you send are text as in `xm`: `512` (MiB), `512M`, `4G`, `524288K`. Changes answer 202 "
            "with a job; `GET /api/jobs/{id}/?wait=30` follows it. Errors are `{\"code\", \"message\"}`."
        ),
        "VERSION": "1",
        "COMPONENT_SPLIT_REQUEST": True,
    }


class DocsView(SpectacularSwaggerView):
    url_name = "api:schema"
    title = "BalloonWeb API"

    @staticmethod
    def _swagger_ui_resource(filename):
        return _get_sidecar_url(f"swagger-ui-dist/{filename}")

    @staticmethod
    def _swagger_ui_favicon():
        return _get_sidecar_url("swagger-ui-dist/favicon-32x32.png")


def api_only(patterns) -> SimpleNamespace:
    return SimpleNamespace(urlpatterns=patterns)
