"""The demo shop: user, product and order services that every pattern calls."""
