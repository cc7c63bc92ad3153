"""nDPI result files (CAPTURE.out, as nDPI's tests/result and ndpiReader -v 2
write them): the flow-line format and how a line's label is read. Standard
library only: scripts/train.py and scripts/count-labels.py share it."""
import re

L4 = {"TCP": 6, "UDP": 17, "ICMP": 1, "ICMPV6": 58}
# One flow of nDPI's result file: protocol, endpoints, an optional [VLAN: N],
# the protocol stack, and (further on) how nDPI found it.
FLOW_LINE = re.compile(r"^\s+\d+\s+(\S+)\s+(\S+)\s+(<->|->)\s+(\S+)\s+(?:\[VLAN: \d+\])?"
                       r"\[proto:\s*([^\]]+)\]")
CONFIDENCE = re.compile(r"\[Confidence: ([^\]]+)\]")
# nDPI's guesses: the label comes from the port or the address, not from the
# bytes. Flows labelled that way are left out.
GUESSES = ("Match by port", "Match by IP")
# A DNS exchange is labelled DNS whatever name it looks up: nDPI writes
# "DNS.Google" for a lookup of a Google name, but the packets are DNS.
LOOKUP_MASTERS = ("DNS",)
# A QUIC connection is labelled QUIC whatever service it reaches: nDPI names
# the service ("QUIC.Google") from the SNI, which it reads by decrypting the
# Initial packet (its keys derive from the connection ID, RFC 9001 5.2). A
# classifier of the packet bytes sees that ClientHello encrypted; a service
# label there can only be learnt from the addresses' habits.
SEALED_MASTERS = ("QUIC",)
MASTER_LABELS = LOOKUP_MASTERS + SEALED_MASTERS


def stack_of(proto):
    """'91.125/TLS.Skype_Teams' → ('TLS', 'Skype_Teams'); 'GTP:7/HTTP' →
    ('HTTP', 'HTTP'): the master and the application protocol."""
    names = proto.split("/", 1)[-1].split(".")
    return names[0].strip(), names[-1].strip()


def label_of(proto):
    """The label of a [proto: ...] text: the application protocol, or the
    master for a lookup or a QUIC connection ('5.126/DNS.Google' → 'DNS',
    '188.126/QUIC.Google' → 'QUIC')."""
    master, app = stack_of(proto)
    return master if master in MASTER_LABELS else app
