"""Every error answers `{"code", "detail"}` with the right status, never a 500."""

import pytest

from tests.factories import FlashSaleFactory, StaffFactory

pytestmark = pytest.mark.django_db


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["code"], str)
    assert body["code"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    if code is not None:
        assert body["code"] == code
    return body


def test_malformed_json_is_400_parse_error(api_client):
    response = api_client.post("/api/v1/auth/register/", data="{not json", content_type="application/json")

    assert_error(response, 400, "parse_error")


def test_unknown_product_is_404(api_client):
    assert_error(api_client.get("/api/v1/products/no-such-product/"), 404, "not_found")


def test_unknown_api_path_is_404_json(api_client):
    assert_error(api_client.get("/api/v1/no-such-endpoint/"), 404, "not_found")


def test_non_numeric_id_in_path_is_404_json(api_client):
    assert_error(api_client.get("/api/v1/flash-sales/abc/"), 404, "not_found")


def test_wrong_method_is_405(api_client):
    assert_error(api_client.delete("/api/v1/products/"), 405, "method_not_allowed")


def test_wrong_type_is_400_with_field_errors(api_client):
    response = api_client.post(
        "/api/v1/auth/register/", {"username": ["alice"], "password": 12, "email": 5}, format="json"
    )

    body = assert_error(response, 400, "invalid")
    assert set(body["errors"]) == {"username", "email"}


def test_unauthenticated_call_is_401(api_client):
    response = api_client.get("/api/v1/orders/")

    assert_error(response, 401, "not_authenticated")


def test_oversized_body_is_413(api_client, settings):
    payload = '{"username": "' + "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1) + '"}'

    response = api_client.post("/api/v1/auth/register/", data=payload, content_type="application/json")

    assert_error(response, 413, "payload_too_large")


def test_unsupported_media_type_is_415(api_client):
    response = api_client.post("/api/v1/auth/register/", data="username=a", content_type="text/plain")

    assert_error(response, 415, "unsupported_media_type")


def test_bad_page_number_is_404(api_client):
    assert_error(api_client.get("/api/v1/products/?page=999"), 404, "not_found")


def test_bad_filter_value_is_400(api_client):
    body = assert_error(api_client.get("/api/v1/flash-sales/?status=bogus"), 400, "invalid")
    assert "status" in body["errors"]


def test_storefront_404_is_an_html_page(client):
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("query", ["page_size=abc", "page_size=0", "status=", "status=bogus"])
def test_malformed_list_parameters_are_400(api_client, query):
    body = assert_error(api_client.get(f"/api/v1/flash-sales/?{query}"), 400, "invalid")
    assert set(body["errors"]) & {"page_size", "status"}


def test_a_dependency_outage_is_a_503_not_a_500(staff_client, settings):
    sale = FlashSaleFactory()
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}}

    stats = staff_client.get(f"/api/v1/flash-sales/{sale.pk}/stats/")
    preheat = staff_client.post(f"/api/v1/flash-sales/{sale.pk}/preheat/")

    assert_error(stats, 503, "unavailable")
    assert_error(preheat, 503, "unavailable")


def test_staff_refused_a_back_office_page_stay_in_the_back_office(client, db):
    clerk = StaffFactory()  # staff, without the orders' permissions
    client.force_login(clerk)

    refused = client.get("/admin/orders/order/")

    page = refused.content.decode()
    assert refused.status_code == 403
    assert "Flash-sale shop back office" in page and 'href="/admin/"' in page
    assert "Back to the back office" in page and "Back to the shop" not in page
