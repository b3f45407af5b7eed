"""The site's URLs plus a trivial DRF view, with the API's authentication, permissions and renderer: the
baseline that bench/api.py measures the API against."""

from django.urls import include, path
from rest_framework.response import Response
from rest_framework.views import APIView

from balloonweb.api.views import ApiView


class Trivial(ApiView, APIView):
    def get(self, request):
        return Response({"ok": True})


urlpatterns = [path("bench/trivial/", Trivial.as_view()), path("", include("balloonweb.urls"))]
