"""Insert Slingshot-like PCI NICs into a synthetic hwloc XML (fixture helper, see README.md).

Usage: add_nics.py FILE NUMA:OPENFABRICS_NAME:NET_NAME...  Each NIC becomes a Bridge > PCIDev
with two OSDev children (an OpenFabrics device and its Ethernet interface), attached to the
Group/Package object whose nodeset is exactly that NUMA node, as hwloc does on real nodes.
"""

import sys
import xml.etree.ElementTree as ET

path, specs = sys.argv[1], sys.argv[2:]
tree = ET.parse(path)
gp = 10_000
for n, spec in enumerate(specs):
    numa, fabric, net = spec.split(":")
    mask = f"0x{1 << int(numa):08x}"
    parent = next(o for o in tree.getroot().iter("object")
                  if o.get("type") in ("Group", "Package") and o.get("nodeset") == mask)
    bridge = ET.SubElement(parent, "object", {"type": "Bridge", "gp_index": str(gp),
                                              "bridge_type": "0-1", "depth": "0",
                                              "bridge_pci": f"0000:[{n + 1:02x}-{n + 1:02x}]"})
    pci = ET.SubElement(bridge, "object", {"type": "PCIDev", "gp_index": str(gp + 1),
                                           "pci_busid": f"0000:{n + 1:02x}:00.0",
                                           "pci_type": "0200 [17db:0501] [17db:0501] 02"})
    ET.SubElement(pci, "object", {"type": "OSDev", "gp_index": str(gp + 2), "name": fabric,
                                  "osdev_type": "3"})
    ET.SubElement(pci, "object", {"type": "OSDev", "gp_index": str(gp + 3), "name": net,
                                  "osdev_type": "2"})
    gp += 10
ET.indent(tree)
with open(path, "w", encoding="utf-8") as fh:  # keep hwloc's header (its DTD line)
    fh.write('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE topology SYSTEM "hwloc2.dtd">\n')
    fh.write(ET.tostring(tree.getroot(), encoding="unicode") + "\n")
