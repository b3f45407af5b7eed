from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("balloonweb.access.urls")),  # /teams/, /audit/, /account/sign-out-everywhere/ (issue 4)
    path("", include("balloonweb.api.urls")),  # /api/ (REST API, schema, docs), /metrics, /account/tokens/
]
