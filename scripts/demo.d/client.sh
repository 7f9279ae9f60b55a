#!/usr/bin/env bash
# One conversation of the demo's generated traffic: a real client of the service, run in
# the source workload's network namespace. Usage: client.sh LAB SOURCE ADDRESS SERVICE
lab=$1 src=$2 ip=$3 svc=$4
case $svc in
  TCP/8080 | TCP/8443) c=(curl -s -m 3 -o /dev/null "http://$ip:${svc#TCP/}/") ;;
  TCP/6379) c=(redis-cli -h "$ip" PING) ;;
  TCP/5432) c=(psql "host=$ip port=5432 user=app dbname=app connect_timeout=3 sslmode=disable" -c "select 1") ;;
  TCP/389) c=(ldapsearch -x -H "ldap://$ip" -b dc=example,dc=org -s base -l 3 -o nettimeout=3) ;;
  UDP/53) c=(dig +time=1 +tries=1 "@$ip" example.org) ;;
  *) c=(nc -z -w 2 "$ip" "${svc#*/}") ;;
esac
timeout 10 "${BULKHEAD:-bulkhead}" lab exec --name "$lab" "$src" -- "${c[@]}" >/dev/null 2>&1 || true
