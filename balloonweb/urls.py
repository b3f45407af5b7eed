from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from balloonweb.access.ratelimit import LoginForm
from balloonweb.access.views import PasswordChangeView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("domains.autoscaler.urls")),  # /autoscaler/ page actions, /api/autoscaler/ (before the API's catch-all)
    path("", include("balloonweb.api.urls")),  # /api/ (REST API, schema, docs), /metrics, /account/tokens/
    # Django's own authentication views, with the console's templates (templates/registration/).
    path("login/", auth_views.LoginView.as_view(authentication_form=LoginForm, redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/", PasswordChangeView.as_view(), name="password_change"),
    path("password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("", include("balloonweb.access.urls")),  # /teams/, /audit/, /account/sign-out-everywhere/ (issue 4)
    path("", include("domains.urls")),
]
