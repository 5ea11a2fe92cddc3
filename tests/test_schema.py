"""The OpenAPI schema describes the service as it answers: what each route returns, lists as
pages, the errors each route gives, and components of their own for each router.

tests/test_fuzz.py checks the same schema against the running service with schemathesis.
"""

import io

import pytest
from django.core.management import call_command
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

from drf_scale.conf import scale_settings
from drf_scale.pagination import SCHEMA_ORDERING_CHOICES, ordering_schema

ROUTERS = ("/naive/", "/api/")
WRITES = ("post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def schema() -> dict:
    """The schema as /api/schema/ serves it, validated against the OpenAPI 3 specification."""
    generated = SchemaGenerator().get_schema(request=None, public=True)
    assert not GENERATOR_STATS, "drf-spectacular warned or failed: run manage.py spectacular"
    validate_schema(generated)
    return generated


def operations(schema: dict, prefix: str = "/") -> list[tuple[str, str, dict]]:
    return [
        (method, path, operation)
        for path, item in schema["paths"].items()
        if path.startswith(prefix)
        for method, operation in item.items()
    ]


def resolve(schema: dict, node: dict) -> dict:
    """``node`` with ``$ref`` (and a lone ``allOf``) followed to the component."""
    while True:
        if "$ref" in node:
            node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
        elif list(node.get("allOf", ())) and len(node["allOf"]) == 1:
            node = node["allOf"][0]
        else:
            return node


def body(schema: dict, path: str, method: str, status: int) -> dict:
    response = schema["paths"][path][method]["responses"][str(status)]
    return response["content"]["application/json"]["schema"]


def references(schema: dict, node, seen: set[str] | None = None) -> set[str]:
    """The names of the components ``node`` refers to, transitively."""
    seen = set() if seen is None else seen
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and value.startswith("#/components/schemas/"):
                name = value.rsplit("/", 1)[1]
                if name not in seen:
                    seen.add(name)
                    references(schema, schema["components"]["schemas"][name], seen)
            else:
                references(schema, value, seen)
    elif isinstance(node, list):
        for item in node:
            references(schema, item, seen)
    return seen


def test_spectacular_validate_is_clean(tmp_path):
    """What CI runs: ``manage.py spectacular --validate --fail-on-warn`` (raises on a warning)."""
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"),
        stdout=out, stderr=err,
    )  # fmt: skip
    assert "Warning" not in err.getvalue() and "Error" not in err.getvalue(), err.getvalue()
    assert (tmp_path / "schema.yml").read_text().startswith("openapi: 3")


@pytest.mark.django_db
def test_schema_endpoint_logs_nothing(client, capsys, caplog):
    for _ in range(2):
        response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
        assert response.status_code == 200
    assert capsys.readouterr().err == ""
    assert [record.getMessage() for record in caplog.records] == []
    assert "/api/schema/" not in response.json()["paths"]  # the shop's routes, not itself


def test_routers_have_components_of_their_own(schema):
    """/api/ serializers are other classes than /naive/'s: same JSON, other components."""
    expected = {
        ("/products/", "get", 200): ("PaginatedProductList", "PaginatedApiProductList"),
        ("/products/", "post", 201): ("ProductDetail", "ApiProductDetail"),
        ("/products/{id}/", "get", 200): ("ProductDetail", "ApiProductDetail"),
        ("/products/{id}/", "put", 200): ("ProductDetail", "ApiProductDetail"),
        ("/products/{id}/", "patch", 200): ("ProductDetail", "ApiProductDetail"),
    }
    for (route, method, status), names in expected.items():
        found = tuple(
            body(schema, prefix + route.lstrip("/"), method, status)["$ref"].rsplit("/", 1)[1]
            for prefix in ROUTERS
        )
        assert found == names, (route, method)
    naive = references(schema, schema["paths"]["/naive/products/"]["get"])
    api = references(schema, schema["paths"]["/api/products/"]["get"])
    assert {"Product", "PaginatedProductList"} <= naive - api
    assert {"ApiProduct", "PaginatedApiProductList"} <= api - naive


def test_lists_are_documented_as_pages_or_arrays(schema):
    components = schema["components"]["schemas"]
    keyset = components["PaginatedApiProductList"]
    assert set(keyset["required"]) == {"next", "previous", "results"}
    assert set(keyset["properties"]) == {"count", "count_is_estimate", "next", "previous",
                                         "results"}  # fmt: skip
    assert keyset["properties"]["results"]["items"] == {"$ref": "#/components/schemas/ApiProduct"}
    page = components["PaginatedProductList"]
    assert set(page["properties"]) == {"count", "next", "previous", "results"}
    for prefix in ROUTERS:
        reviews = resolve(schema, body(schema, f"{prefix}products/{{id}}/reviews/", "get", 200))
        assert reviews["properties"]["results"]["items"] == {"$ref": "#/components/schemas/Review"}
        for reference in ("brands", "categories", "tags"):
            page = resolve(schema, body(schema, f"{prefix}{reference}/", "get", 200))
            assert page["properties"]["results"]["type"] == "array", reference
    for stats in ("categories", "top-products"):
        assert body(schema, f"/naive/stats/{stats}/", "get", 200)["type"] == "array"
        stored = resolve(schema, body(schema, f"/api/stats/{stats}/", "get", 200))
        assert stored["properties"]["results"]["type"] == "array"
        assert resolve(schema, stored["properties"]["results"]["items"])["properties"]
    # Every GET of a collection is a page or an array, every GET of an object is not.
    for method, path, _ in operations(schema):
        if method != "get":
            continue
        success = resolve(schema, body(schema, path, "get", 200))
        is_list = success.get("type") == "array" or "results" in success.get("properties", {})
        assert is_list == (not path.endswith("}/")), path


def test_writes_answer_the_read_representation(schema):
    """/naive/ PUT and PATCH answer the detail representation, as /api/ does."""
    for method in ("put", "patch"):
        assert body(schema, "/naive/products/{id}/", method, 200)["$ref"].endswith("/ProductDetail")
    for prefix in ROUTERS:
        reviews = schema["paths"][f"{prefix}products/{{id}}/reviews/"]["post"]["responses"]
        assert "201" in reviews and "200" not in reviews


def test_every_route_documents_401_and_503(schema):
    for method, path, operation in operations(schema):
        responses = operation["responses"]
        assert "Retry-After" in responses["503"]["headers"], (method, path)
        for status in ("401", "503"):
            error = responses[status]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/Error"}, (method, path, status)
    assert schema["components"]["schemas"]["Error"]["required"] == ["detail"]


def test_write_routes_document_their_errors(schema):
    for method, path, operation in operations(schema):
        if method not in WRITES:
            continue
        codes = set(operation["responses"])
        expected = {"401", "403", "503"}
        if method != "delete":
            expected |= {"400", "413", "415"}
        if path.endswith("{id}/") or path.endswith("{id}/reviews/"):
            expected.add("404")
        if path.endswith("orders/") or ("products" in path and "reviews" not in path):
            expected.add("409")  # stock; a sku taken meanwhile; orders refer to the product
        conditional = path.startswith("/api/products/") and "reviews" not in path
        if conditional:
            expected.add("412")
            if method != "post" and scale_settings.REQUIRE_IF_MATCH:
                expected.add("428")
        assert expected <= codes, (method, path, sorted(expected - codes))
        assert ("412" in codes) == conditional, (method, path)
        assert "428" not in codes or scale_settings.REQUIRE_IF_MATCH, (method, path)
        if "400" in codes:
            error = body(schema, path, method, 400)
            assert error == {"$ref": "#/components/schemas/ValidationError"}, (method, path)
        assert operation["security"] and {} not in operation["security"], (method, path)
    for method, path, _ in operations(schema, "/api/products/{id}/"):
        if method in ("put", "patch", "delete"):
            names = {p["name"] for p in schema["paths"][path][method]["parameters"]}
            assert {"If-Match", "If-None-Match"} <= names, method


def test_reads_are_open_to_anyone(schema):
    for method, path, operation in operations(schema):
        if method == "get":
            assert {} in operation["security"], path


def test_keyset_parameters_are_what_the_paginator_accepts(schema):
    parameters = {p["name"]: p for p in schema["paths"]["/api/products/"]["get"]["parameters"]}
    assert parameters["page_size"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 100}
    assert parameters["count"]["schema"] == {"type": "boolean"}
    assert parameters["cursor"]["schema"] == {"type": "string", "minLength": 1}
    assert parameters["ordering"]["allowEmptyValue"]  # empty: the default ordering
    orderings = parameters["ordering"]["schema"]["enum"]
    assert {"price", "-created_at", "-price,created_at", "created_at,-price"} <= set(orderings)
    assert len(orderings) == 12 and "price,price" not in orderings
    assert "page" not in parameters


def test_query_parameters_state_their_bounds(schema):
    """What the server refuses with a 400 is outside the documented values, and an empty
    value is documented where it means "absent" (filters, page, ordering)."""
    for prefix in ROUTERS:
        parameters = {
            p["name"]: p for p in schema["paths"][f"{prefix}products/"]["get"]["parameters"]
        }
        for name in ("brand", "category", "tag"):
            bounds = parameters[name]["schema"]
            assert (bounds["minimum"], bounds["maximum"]) == (-(2**63), 2**63 - 1), name
        for name in ("brand", "category", "tag", "status", "min_price", "max_price"):
            assert parameters[name]["allowEmptyValue"], name
        assert parameters["min_price"]["schema"]["type"] == "string"
        assert "pattern" in parameters["min_price"]["schema"]
    page = {p["name"]: p for p in schema["paths"]["/naive/products/"]["get"]["parameters"]}
    assert page["page"]["allowEmptyValue"] and page["page"]["schema"]["minimum"] == 1
    assert page["page_size"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 100}
    assert "allowEmptyValue" not in page["page_size"]  # empty is a 400
    orders = schema["paths"]["/api/orders/"]["post"]["requestBody"]["content"]
    assert list(orders) == ["application/json"]  # forms cannot carry lines


def test_ordering_schema_falls_back_to_a_pattern():
    assert len(ordering_schema(["a", "b", "c"])["enum"]) == 6 + 24 + 48
    many = ordering_schema(["a", "b", "c", "d"])
    assert "enum" not in many and many["pattern"].startswith("^-?(?:a|b|c|d)")
    assert len(ordering_schema(["a", "b", "c"])["enum"]) <= SCHEMA_ORDERING_CHOICES
