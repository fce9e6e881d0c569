"""nsvirsh: the virsh-like shell."""
