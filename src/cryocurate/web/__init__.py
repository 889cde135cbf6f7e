"""The portal's web surface: pages and their JSON twins, thin over the catalog queries."""
