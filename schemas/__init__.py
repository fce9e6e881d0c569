"""XSD files for the supported subset of libvirt's <domain type='lxc'>."""
