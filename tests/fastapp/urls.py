"""The read-path check views under one router (ROOT_URLCONF of the check tests)."""

from rest_framework.routers import SimpleRouter

from tests.fastapp import views

router = SimpleRouter()
router.register("compiled", views.CompiledGadgets, basename="compiled")
router.register("falling", views.FallingGadgets, basename="falling")
router.register("introspected", views.IntrospectedGadgets, basename="introspected")
router.register("nested-all", views.NestedAllGadgets, basename="nested-all")
urlpatterns = router.urls
