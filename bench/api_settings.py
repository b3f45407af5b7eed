"""The project's settings with bench/api_urls.py as the URL configuration, for the server bench/api.py starts."""

from balloonweb.settings import *  # noqa: F403

ROOT_URLCONF = "bench.api_urls"
