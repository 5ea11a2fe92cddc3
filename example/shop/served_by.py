"""``X-Served-By: $SERVED_BY`` on every response: which host answered behind a balancer."""

import os

from django.http import HttpRequest, HttpResponse

from drf_scale.middleware import SyncAndAsyncMiddleware


class ServedByMiddleware(SyncAndAsyncMiddleware):
    def call(self, request: HttpRequest) -> HttpResponse:
        return self.mark(self.get_response(request))

    async def acall(self, request: HttpRequest) -> HttpResponse:
        return self.mark(await self.get_response(request))

    @staticmethod
    def mark(response: HttpResponse) -> HttpResponse:
        response["X-Served-By"] = os.environ["SERVED_BY"]
        return response
