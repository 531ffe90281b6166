"""Content is data: the catalog and the presets are checked like code."""

import pytest

from labkit.core.params import resolve
from labkit.scenarios import params_of, patterns
from labkit.scenarios.presets import load_presets
from labkit.shop.catalog import load_catalog


def test_catalog_orders_refer_to_known_users_and_products():
    catalog = load_catalog()
    assert len(catalog.users) >= 3 and len(catalog.products) >= 12
    for order in catalog.orders.values():
        assert order.user_id in catalog.users
        assert all(i.product_id in catalog.products and i.quantity > 0 for i in order.items)
    assert all(p.price > 0 and p.stock >= 0 for p in catalog.products.values())


@pytest.mark.parametrize("pattern", patterns())
def test_every_preset_uses_valid_parameters(pattern):
    for preset in load_presets(pattern).values():
        assert preset.title and len(preset.explain) > 40
        resolve(params_of(pattern), preset.params, owner=pattern)


@pytest.mark.parametrize("pattern", patterns())
def test_every_pattern_offers_presets_including_a_failure(pattern):
    presets = load_presets(pattern)
    assert len(presets) >= 3
    assert any(p.params for p in presets.values())
