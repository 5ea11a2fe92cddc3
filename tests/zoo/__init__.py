"""A zoo of serializer shapes real DRF applications use, written on the test apps' models.

``serializers`` holds the serializers, ``views`` one shape per entry of ``SHAPES`` (its
serializer, its view's queryset and hooks), ``data`` the rows, ``urls`` the URL names the
hyperlinks reverse; ``python -m tests.zoo.report`` prints each shape's compiled coverage.
"""
