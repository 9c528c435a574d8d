"""Reports of a stored study: a text summary (`autoc show`) and an HTML page with plots (`autoc report`)."""
