#!/usr/bin/env bash
# Regenerate the hwloc XML fixtures (hwloc 2.9.0, Debian 12). See README.md for what each is.
set -euo pipefail
cd "$(dirname "$0")"
L=lstopo-no-graphics
# 2 sockets x 4 cores x 2 threads, siblings adjacent (core c = CPUs 2c, 2c+1).
$L -i "package:2 numa:1 core:4 pu:2" --of xml > two-socket-smt.xml
# Aurora-shaped: 2 x 52 cores x 2 threads, core c = CPUs c and c+104 (interleaved PU indexes).
$L -i "package:2 numa:1 core:52 pu:2(indexes=2*104:1*2)" --of xml > aurora-like.xml
# Holes + restricted cpuset: 2 x 4 cores x 2 threads (c, c+8), cores 1 and 5 removed
# (CPUs 1,9,5,13: --restrict), and the process allowed only CPUs 2-4,10-12 (--allow).
$L -i "package:2 numa:1 core:4 pu:2(indexes=2*8:1*2)" --restrict 0x0000dddd \
   --disallowed --allow 0x00001c1c --of xml > holes-restricted.xml
# Polaris-shaped: 1 socket, 4 NUMA domains (NPS4) x 8 cores x 2 threads (c, c+32), plus two
# Slingshot NICs inserted by add_nics.py: cxi0 (+ its Ethernet hsn0) under NUMA 0's group,
# cxi1 (+ hsn1) under NUMA 2's group, as hwloc attaches PCI devices on a real node.
$L -i "package:1 numa:4 core:8 pu:2(indexes=2*32:1*2)" --of xml > polaris-like-nics.xml
python3 add_nics.py polaris-like-nics.xml 0:cxi0:hsn0 2:cxi1:hsn1
# This machine (2-vCPU Firecracker VM). Its NUMA local_memory varies over time
# (docs/platform-notes.md, "Topology and memory").
$L --of xml > debian12-vm.xml
