#!/usr/bin/env bash
# A tool's own network namespace whose only way out is Gatekeeper's egress gate.
#
# The same boundary as the sandboxed runner (docs/containment.md) for a tool that runs as its
# own process or container without bubblewrap: the namespace has one link, to the host (or to
# the namespace Gatekeeper runs in), no default route, no resolver, and an nftables filter that
# lets it open exactly one kind of connection: TCP to the egress gate's port. Everything else is
# rejected at the tool's own end. Gatekeeper may still open connections INTO it (the tool's
# service port), which the filter also names.
#
#   tool-netns.sh up NAME --gate-addr 10.231.7.1 --tool-addr 10.231.7.2 --egress-port 8082 \
#                         [--serve-port 7000 ...] [--peer-netns NS]
#   tool-netns.sh down NAME [--peer-netns NS]
#
# Then run the tool inside it with the proxy variables naming the gate:
#   ip netns exec NAME env HTTP_PROXY=http://10.231.7.1:8082 HTTPS_PROXY=http://10.231.7.1:8082 \
#       ALL_PROXY=http://10.231.7.1:8082 NO_PROXY= <tool command>
# and give its upstream `egress_credential: true` in gatekeeper.yaml: each call then carries a
# credential (header X-Gatekeeper-Egress-Credential) that the tool sends as its proxy password.
#
# Needs root (or CAP_NET_ADMIN + CAP_SYS_ADMIN), iproute2 and nftables (Debian: apt-get install
# nftables). Kubernetes does the same with a NetworkPolicy: deploy/kubernetes/tool-egress.yaml.
set -euo pipefail

die() { echo "tool-netns.sh: $*" >&2; exit 2; }
[ $# -ge 2 ] || die "usage: tool-netns.sh up|down NAME [options] (see the header of this file)"
action=$1 name=$2
shift 2
gate_addr="" tool_addr="" egress_port="" peer="" serve_ports=()
while [ $# -gt 0 ]; do
  case $1 in
    --gate-addr) gate_addr=$2; shift 2 ;;
    --tool-addr) tool_addr=$2; shift 2 ;;
    --egress-port) egress_port=$2; shift 2 ;;
    --serve-port) serve_ports+=("$2"); shift 2 ;;
    --peer-netns) peer=$2; shift 2 ;;
    *) die "unknown option $1" ;;
  esac
done
[[ $name =~ ^[A-Za-z0-9_.-]{1,32}$ ]] || die "NAME must be 1-32 of A-Z a-z 0-9 _ . -"
# Interface names are at most 15 characters: derived from the namespace's name.
tag=$(printf '%s' "$name" | sha256sum | cut -c1-8)
host_if="gkh$tag" tool_if="gkt$tag"
in_peer() { if [ -n "$peer" ]; then ip netns exec "$peer" "$@"; else "$@"; fi; }

case $action in
  up)
    [ -n "$gate_addr" ] && [ -n "$tool_addr" ] && [ -n "$egress_port" ] \
      || die "up needs --gate-addr, --tool-addr and --egress-port"
    [[ $egress_port =~ ^[0-9]{1,5}$ ]] || die "--egress-port must be a port number"
    for port in "${serve_ports[@]}"; do [[ $port =~ ^[0-9]{1,5}$ ]] || die "--serve-port must be a port number"; done
    command -v nft >/dev/null || die "nftables is missing: apt-get install -y nftables"
    ip netns add "$name"
    trap 'ip netns del "$name" 2>/dev/null || true' ERR
    ip link add "$host_if" type veth peer name "$tool_if"
    ip link set "$tool_if" netns "$name"
    [ -z "$peer" ] || ip link set "$host_if" netns "$peer"
    in_peer ip addr add "$gate_addr/30" dev "$host_if"
    in_peer ip link set "$host_if" up
    ip -n "$name" link set lo up
    ip -n "$name" addr add "$tool_addr/30" dev "$tool_if"
    ip -n "$name" link set "$tool_if" up
    ingress=""
    if [ ${#serve_ports[@]} -gt 0 ]; then
      ingress="ip saddr $gate_addr tcp dport { $(IFS=,; echo "${serve_ports[*]}") } accept"
    fi
    # Filtered at the tool's end, so nothing the tool does in its namespace can route around it.
    ip netns exec "$name" nft -f - <<NFT
table inet gatekeeper_tool {
  chain output {
    type filter hook output priority 0; policy drop;
    oif "lo" accept
    ct state established,related accept
    ip daddr $gate_addr tcp dport $egress_port accept
    reject with icmpx type admin-prohibited
  }
  chain input {
    type filter hook input priority 0; policy drop;
    iif "lo" accept
    ct state established,related accept
    $ingress
  }
}
NFT
    trap - ERR
    ;;
  down)
    ip netns del "$name" 2>/dev/null || true   # takes the tool's end of the link, and so the link, with it
    in_peer ip link del "$host_if" 2>/dev/null || true
    ;;
  *) die "the action is up or down, not $action" ;;
esac
