"""Other formats of a container definition (the LXC config) to and from domain XML."""
