"""The console's pages, one module each; `points_console.app` routes to them."""
