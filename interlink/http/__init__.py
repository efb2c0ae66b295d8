"""The Falcon front end: resources that parse, check and hand over. No business logic here."""
