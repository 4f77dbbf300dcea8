from django.urls import path

from {{ cookiecutter.package_name }}.items import views

app_name = "items"
urlpatterns = [
    path("api/v1/items", views.ItemCollectionView.as_view(), name="collection"),
    path("api/v1/items/<int:item_id>", views.ItemDetailView.as_view(), name="detail"),
]
