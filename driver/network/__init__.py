"""Networking on the client side: interfaces of a starting or running container
(attach), the rtnetlink they need (rtnl, through pyroute2's message classes), and
nsvirt's managed networks (networks, netxml, nat, dhcp).

Nothing here is imported by the supervisor or by one-shot commands that do not
touch the network: pyroute2 is loaded where an interface is made or read.
"""
