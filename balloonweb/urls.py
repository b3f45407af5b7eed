from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("balloonweb.api.urls")),  # /api/ (REST API, schema, docs), /metrics, /account/tokens/
]
