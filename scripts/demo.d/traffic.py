#!/usr/bin/env python3
"""The example's application traffic, for the Discover part of the demo.

Reads the matrix of the hand-written policy (`bulkhead analyze matrix -o json`) and the
lab's status (`bulkhead lab status -o json`) and prints one line per conversation the
applications are meant to have: `SOURCE DESTINATION-ADDRESS SERVICE` for every allowed
pair and service the destination really serves. The demo runs
a real client of that service for each line (TCP and UDP: ICMP reachability is the
lab probe's job in part 2): the policy to learn is in the traffic, and
nothing else is.
"""
import json
import sys

matrix = json.load(open(sys.argv[1]))
status = json.load(open(sys.argv[2]))
served = {}
address = {}
for w in status["workloads"]:
    address[w["name"]] = w["ipv4"]
    served[w["name"]] = set(w.get("ports", []))
for pair, services in sorted(matrix["allowed"].items()):
    src, dst = pair.split(" -> ")
    for svc in services:
        if svc in served.get(dst, ()):
            print(src, address[dst], svc)
