"""All Redis access: key names, connections, the embedded server, and the stores built on them."""
