#!/usr/bin/env bash
# Generates the WireGuard configurations and nftables rules of the LabAnalyse network from a plan
# (see network.example.conf):
#
#   generate.sh PLAN OUT_DIR                  everything: keys, hub and lab configs, tablets, rules
#   generate.sh PLAN OUT_DIR tablet CODE NAME one more tablet for lab CODE (keys kept in OUT_DIR)
#
# The policy it writes (requirement S-2, S-3):
# - each proximity lab reaches the cloud's API (primary VPN, wg0) and the central lab's API (backup
#   VPN, wg1), never another proximity lab: WireGuard's AllowedIPs only route the hubs' networks to a
#   lab, and the SD-WAN rules (sdwan.nft) drop lab-to-lab traffic wherever it could be routed;
# - a tablet reaches only its lab's gateway, on the gateway's tablet port (lab nftables rules, and
#   the tablet's AllowedIPs hold the gateway's address only);
# - the gateway's console port (ADMIN_PORT) answers the lab's LAN only, its metrics port
#   (METRICS_PORT) the central supervision range only; neither is the tablet port.
#
# Private keys are written mode 0600 into OUT_DIR/keys and never printed; OUT_DIR must not be in
# the repository. Needs `wg` (Debian: wireguard-tools).
set -euo pipefail
PLAN=${1:?usage: generate.sh PLAN OUT_DIR [tablet CODE NAME]}
OUT=${2:?usage: generate.sh PLAN OUT_DIR [tablet CODE NAME]}
# shellcheck source=/dev/null
. "$PLAN"
# Plans written before the console and the metrics had listeners of their own.
ADMIN_PORT=${ADMIN_PORT:-9444}
METRICS_PORT=${METRICS_PORT:-9464}
command -v wg >/dev/null || { echo "generate.sh: wg is missing (apt-get install wireguard-tools)" >&2; exit 1; }
umask 077
mkdir -p "$OUT/keys"

key() { # name -> private key file (created once), prints the public key
  local file="$OUT/keys/$1.key"
  [ -s "$file" ] || wg genkey >"$file"
  wg pubkey <"$file"
}
private() { cat "$OUT/keys/$1.key"; }
host_of() { echo "${1%/*}"; }
net_prefix() { # 10.8.1.0/24 -> 10.8.1
  local ip=${1%/*}; echo "${ip%.*}"
}

labs() { echo "$LABS" | grep -v '^\s*$'; }

tablet() { # code tablet_vpn name index
  local code=$1 vpn=$2 name=$3 index=$4
  local prefix; prefix=$(net_prefix "$vpn")
  local gateway_public endpoint
  gateway_public=$(key "lab-$code-tablets")
  endpoint=$(labs | awk -F: -v c="$code" '$1 == c { print $5 ":" $6 }')
  mkdir -p "$OUT/labs/$code/tablets"
  local pub; pub=$(key "tablet-$code-$name")
  cat >"$OUT/labs/$code/tablets/$name.conf" <<CONF
# Tablet $name of lab $code. It reaches its gateway only.
[Interface]
PrivateKey = $(private "tablet-$code-$name")
Address = $prefix.$index/32

[Peer]
PublicKey = $gateway_public
Endpoint = $endpoint
AllowedIPs = $prefix.1/32
PersistentKeepalive = 25
CONF
  cat >>"$OUT/labs/$code/wg-tablets.peers" <<CONF

[Peer]
# tablet $name
PublicKey = $pub
AllowedIPs = $prefix.$index/32
CONF
}

if [ "${3:-}" = tablet ]; then
  code=${4:?tablet CODE NAME}; name=${5:?tablet CODE NAME}
  vpn=$(labs | awk -F: -v c="$code" '$1 == c { print $3 }')
  [ -n "$vpn" ] || { echo "generate.sh: no lab $code in $PLAN" >&2; exit 1; }
  used=$(grep -c '^AllowedIPs' "$OUT/labs/$code/wg-tablets.peers" 2>/dev/null || echo 0)
  tablet "$code" "$vpn" "$name" $((used + 2))
  echo "tablet $name of $code: $OUT/labs/$code/tablets/$name.conf (add the new peer of wg-tablets.peers to the gateway)"
  exit 0
fi

cloud_pub=$(key cloud)
central_pub=$(key central)
mkdir -p "$OUT/cloud" "$OUT/central"
cat >"$OUT/cloud/wg0.conf" <<CONF
# The cloud's VPN hub: one peer per proximity lab (requirement S-2).
[Interface]
PrivateKey = $(private cloud)
Address = $CLOUD_TUNNEL/16
ListenPort = ${CLOUD_ENDPOINT##*:}
CONF
cat >"$OUT/central/wg1.conf" <<CONF
# The central lab's backup VPN hub: one peer per proximity lab (requirement S-3).
[Interface]
PrivateKey = $(private central)
Address = $CENTRAL_TUNNEL/16
ListenPort = ${CENTRAL_ENDPOINT##*:}
CONF

i=0
lab_nets=()
while IFS=: read -r code lan vpn gateway host port; do
  i=$((i + 1))
  lab_nets+=("$lan")
  lab_pub=$(key "lab-$code")
  lab_backup_pub=$(key "lab-$code-backup")
  mkdir -p "$OUT/labs/$code"
  cloud_tunnel_lab="${CLOUD_TUNNEL%.*.*}.$i.1"
  central_tunnel_lab="${CENTRAL_TUNNEL%.*.*}.$i.1"
  cat >>"$OUT/cloud/wg0.conf" <<CONF

[Peer]
# lab $code
PublicKey = $lab_pub
AllowedIPs = $cloud_tunnel_lab/32, $lan
CONF
  cat >>"$OUT/central/wg1.conf" <<CONF

[Peer]
# lab $code (backup)
PublicKey = $lab_backup_pub
AllowedIPs = $central_tunnel_lab/32, $lan
CONF
  cat >"$OUT/labs/$code/wg0.conf" <<CONF
# Lab $code to the cloud. Only the cloud's network is routed here: no other lab is reachable.
[Interface]
PrivateKey = $(private "lab-$code")
Address = $cloud_tunnel_lab/32

[Peer]
PublicKey = $cloud_pub
Endpoint = $CLOUD_ENDPOINT
AllowedIPs = $CLOUD_TUNNEL/32, $CLOUD_NET
PersistentKeepalive = 25
CONF
  cat >"$OUT/labs/$code/wg1.conf" <<CONF
# Lab $code to the central lab: the backup VPN (requirement S-3).
[Interface]
PrivateKey = $(private "lab-$code-backup")
Address = $central_tunnel_lab/32

[Peer]
PublicKey = $central_pub
Endpoint = $CENTRAL_ENDPOINT
AllowedIPs = $CENTRAL_TUNNEL/32, $CENTRAL_NET
PersistentKeepalive = 25
CONF
  prefix=$(net_prefix "$vpn")
  key "lab-$code-tablets" >/dev/null
  cat >"$OUT/labs/$code/wg-tablets.conf" <<CONF
# Lab $code's tablets: the gateway listens on $prefix.1:$GATEWAY_PORT.
[Interface]
PrivateKey = $(private "lab-$code-tablets")
Address = $prefix.1/24
ListenPort = $port
CONF
  : >"$OUT/labs/$code/wg-tablets.peers"
  for n in $(seq 1 "$TABLETS_PER_LAB"); do
    tablet "$code" "$vpn" "tablet-$n" $((n + 1))
  done
  cat >"$OUT/labs/$code/labedge.nft" <<NFT
#!/usr/sbin/nft -f
# Lab $code's gateway host: tablets reach the gateway's tablet port and nothing else; the console
# answers the lab's LAN only, the metrics the central supervision range only.
table inet labedge_gateway
delete table inet labedge_gateway
table inet labedge_gateway {
  chain input {
    type filter hook input priority filter; policy accept;
    ct state established,related accept
    ip saddr $vpn ip daddr $prefix.1 tcp dport $GATEWAY_PORT accept
    ip saddr $vpn drop
    tcp dport $ADMIN_PORT ip saddr != $lan drop
    tcp dport $METRICS_PORT ip saddr != $MONITORING_NET drop
  }
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    ip saddr $vpn drop
  }
}
NFT
done < <(labs)

elements=$(IFS=,; echo "${lab_nets[*]}" | sed 's/,/, /g')
cat >"$OUT/sdwan.nft" <<NFT
#!/usr/sbin/nft -f
# The SD-WAN policy, wherever sites are routed to each other (the cloud hub, the central hub, an
# SD-WAN edge): labs reach the APIs, never each other.
table inet labedge_sdwan
delete table inet labedge_sdwan
table inet labedge_sdwan {
  set labs {
    type ipv4_addr; flags interval;
    elements = { $elements }
  }
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    # Each proximity lab to the cloud's and the central lab's APIs.
    ip saddr @labs ip daddr { $CLOUD_NET, $CENTRAL_NET } tcp dport $API_PORT accept
    # Streaming replication between the cloud's primary and the central lab's standby, both ways
    # (after a failover the roles swap).
    ip saddr $CENTRAL_NET ip daddr $CLOUD_NET tcp dport 5432 accept
    ip saddr $CLOUD_NET ip daddr $CENTRAL_NET tcp dport 5432 accept
    # Central supervision scrapes the gateways' metrics listener (and nothing else of theirs).
    ip saddr $MONITORING_NET ip daddr @labs tcp dport $METRICS_PORT accept
  }
}
NFT
echo "network generated in $OUT: cloud/wg0.conf, central/wg1.conf, labs/*/{wg0,wg1,wg-tablets}.conf, labs/*/tablets/, labs/*/labedge.nft, sdwan.nft"
