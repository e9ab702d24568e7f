#!/bin/sh
# One-shot: join the six nodes of compose.cluster.yaml into one Redis Cluster
# (3 masters, each with 1 replica), unless they already are one. Then wait until
# the cluster says it is ok and every replica is in place, so services started
# after this one find it ready.
# Nodes are named by IP: Redis Cluster nodes announce addresses, not names.
set -eu

NODES="${REDIS_CLUSTER_NODES:?REDIS_CLUSTER_NODES: the nodes as ip:port, space-separated}"
first="${NODES%% *}"
host="${first%:*}"
port="${first##*:}"

if redis-cli -h "$host" -p "$port" cluster info | grep -q '^cluster_state:ok'; then
    echo "cluster already created"
else
    # shellcheck disable=SC2086  # one argument per node
    redis-cli --cluster create $NODES --cluster-replicas 1 --cluster-yes
fi

# shellcheck disable=SC2086
set -- $NODES
replicas=$(($# / 2))
tries=0
until redis-cli -h "$host" -p "$port" cluster info | grep -q '^cluster_state:ok' \
    && [ "$(redis-cli -h "$host" -p "$port" cluster nodes | grep -c slave)" -ge "$replicas" ]; do
    tries=$((tries + 1))
    if [ "$tries" -gt 60 ]; then
        echo "the cluster did not become ok with $replicas replicas within 30 s" >&2
        exit 1
    fi
    sleep 0.5
done
echo "cluster ok:"
redis-cli -h "$host" -p "$port" cluster nodes
