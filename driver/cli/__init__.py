"""The driver's small command-line tools: nsvirt-xml-validate, nsvirt-autostart."""
