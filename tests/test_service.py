"""The service around the contract: schema, docs, browsable API, authentication."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_openapi_schema_lists_the_contract(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for route in ["/api/products/", "/api/products/{id}/", "/api/products/{id}/reviews/",
                  "/api/orders/", "/api/stats/top-products/", "/naive/products/"]:  # fmt: skip
        assert route in paths, route


def test_swagger_ui_and_browsable_api(client, catalog):
    assert client.get("/api/docs/").status_code == 200
    page = client.get("/api/products/", HTTP_ACCEPT="text/html")
    assert page.status_code == 200
    assert b"Product" in page.content and page["Content-Type"].startswith("text/html")


def test_token_authentication(catalog, user):
    token = Token.objects.create(user=user)
    api = APIClient()
    url = f"/api/products/{catalog['products'][0].id}/reviews/"
    assert api.post(url, {"rating": 4, "title": "x"}, format="json").status_code == 401
    api.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert api.post(url, {"rating": 4, "title": "x"}, format="json").status_code == 201
    api.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert api.get(url).status_code == 401


def test_session_authentication_enforces_csrf(catalog, user):
    api = APIClient(enforce_csrf_checks=True)
    api.login(username="alice", password="pw")
    url = f"/api/products/{catalog['products'][0].id}/reviews/"
    response = api.post(url, {"rating": 4, "title": "x"}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
