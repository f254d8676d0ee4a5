from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from core import views

api_v1 = [
    path("", include("purchase.api.urls")),
    path("", include("shop.api.urls")),
    path("", include("orders.api.urls")),
    path("", include("inventory.api.urls")),
    path("auth/", include("accounts.api.urls")),
]

admin.site.site_header = "Flash-sale shop back office"
admin.site.site_title = "Back office"
admin.site.index_title = "Stock, sales and orders"
admin.site.enable_nav_sidebar = False

urlpatterns = [
    path("", include("shop.urls")),
    path("", include("purchase.urls")),
    path("", include("orders.urls")),
    path("accounts/", include("accounts.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("healthz", views.healthz, name="healthz"),
    path("livez", views.livez, name="livez"),
    path("metrics", views.metrics, name="metrics"),
]

handler400 = "core.views.bad_request"
handler403 = "core.views.permission_denied"
handler404 = "core.views.page_not_found"
handler500 = "core.views.server_error"
