#!/usr/bin/env bash
# Starts the one-node e2e cluster under $DIR (default /tmp/kubemail-cluster): PKI, the CNI
# bridge, containerd, the side-loaded images, etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kube-proxy and the local volume provisioner; then waits for the node
# to be Ready and the default ServiceAccount to exist. hack/cluster/down.sh stops it all and
# undoes every change to the host; up.sh runs it first when a previous cluster was left behind.
# Needs root. The binaries come from hack/cluster/build.sh, the images from hack/images/build.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

[[ $(id -u) == 0 ]] || die "needs root (containerd, the kubelet, the bridge)"
for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
	[[ -x $KBIN/$b ]] || die "$KBIN/$b is missing: run hack/envtest.sh and hack/cluster/build.sh"
done
[[ -x $REPO/bin/cluster-provisioner ]] || die "$REPO/bin/cluster-provisioner is missing (make cluster-up builds it)"
for i in pause coredns; do
	[[ -f $IMAGES/$i.tar ]] || die "$IMAGES/$i.tar is missing: run hack/images/build.sh"
done
command -v containerd >/dev/null || die "containerd is missing: run hack/cluster/install-deps.sh"

if [[ -e $DIR ]]; then
	log "$DIR exists: tearing the previous cluster down first"
	"$(dirname "$0")/down.sh"
fi
start_time=$SECONDS
mkdir -p "$DIR"/{host,pki,run,logs,etc,cni/net.d,cni/ipam,containerd,kubelet/root,kubelet/plugins,kubelet/pod-logs,volumes}

# --- host state, saved before anything changes it ---------------------------------------------
for s in "${SYSCTLS[@]}"; do
	v=$(sysctl -n "$s" 2>/dev/null) && echo "$s=$v"
done >"$DIR/host/sysctls"
for p in "${HOST_PATHS[@]}"; do [[ -e $p ]] && echo "$p"; done >"$DIR/host/paths" || true
nft list tables >"$DIR/host/nft-tables" 2>/dev/null || die "nft is missing: run hack/cluster/install-deps.sh"
for c in /sys/fs/cgroup/*/; do [[ -d $c/kubepods ]] && echo "${c}kubepods"; done >"$DIR/host/cgroups" || true
ip link show "$BRIDGE" >/dev/null 2>&1 && die "a link $BRIDGE exists that is not ours; remove it first"
log "saved the host's state in $DIR/host"

# --- PKI --------------------------------------------------------------------------------------
pki=$DIR/pki
openssl_quiet() { openssl "$@" 2>/dev/null; }
openssl_quiet req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj /CN=kubemail-e2e-ca -keyout "$pki/ca.key" -out "$pki/ca.crt"
# cert NAME SUBJECT [SANS]: a leaf certificate signed by the CA, for client and server use.
cert() {
	local name=$1 subj=$2 sans=${3:-}
	openssl_quiet req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$subj" \
		-keyout "$pki/$name.key" -out "$pki/$name.csr"
	{
		echo "basicConstraints=CA:FALSE"
		echo "keyUsage=digitalSignature,keyEncipherment"
		echo "extendedKeyUsage=serverAuth,clientAuth"
		[[ -n $sans ]] && echo "subjectAltName=$sans"
	} >"$pki/$name.ext"
	openssl_quiet x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
		-CAcreateserial -days 2 -extfile "$pki/$name.ext" -out "$pki/$name.crt"
	rm "$pki/$name.csr" "$pki/$name.ext"
}
cert apiserver /CN=kube-apiserver "IP:$NODE_IP,IP:$API_SERVICE_IP,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
cert admin "/O=system:masters/CN=kubernetes-admin"
cert controller-manager /CN=system:kube-controller-manager "IP:$NODE_IP"
cert scheduler /CN=system:kube-scheduler "IP:$NODE_IP"
cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "IP:$NODE_IP,DNS:$NODE_NAME"
cert kube-proxy /CN=system:kube-proxy
cert provisioner "/O=system:masters/CN=kubemail-e2e-provisioner"
openssl_quiet genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key"
openssl_quiet pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
for u in admin controller-manager scheduler kubelet kube-proxy provisioner; do
	cat >"$pki/$u.kubeconfig" <<-KC
	apiVersion: v1
	kind: Config
	clusters:
	- name: kubemail-e2e
	  cluster: {server: "https://$NODE_IP:$API_PORT", certificate-authority: "$pki/ca.crt"}
	users:
	- name: $u
	  user: {client-certificate: "$pki/$u.crt", client-key: "$pki/$u.key"}
	contexts:
	- name: kubemail-e2e
	  context: {cluster: kubemail-e2e, user: $u}
	current-context: kubemail-e2e
	KC
done
log "made the PKI and kubeconfigs"

# --- the bridge the node and the pods live on -------------------------------------------------
ip link add "$BRIDGE" type bridge
ip addr add "$NODE_IP/24" dev "$BRIDGE"
ip link set "$BRIDGE" up
# Host -> ClusterIP traffic leaves by the bridge with the node's address (kube-proxy DNATs it).
ip route add "$SERVICE_CIDR" dev "$BRIDGE" src "$NODE_IP"
# Pod -> Service -> pod on the same bridge needs the bridge's frames to pass iptables.
sysctl -qw net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1 || true
cat >"$DIR/cni/net.d/10-kubemail.conflist" <<EOC
{
  "cniVersion": "0.4.0",
  "name": "kubemail-e2e",
  "plugins": [{
    "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
    "ipam": {"type": "host-local", "dataDir": "$DIR/cni/ipam",
             "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
             "routes": [{"dst": "0.0.0.0/0"}]}
  }]
}
EOC

# --- daemons ----------------------------------------------------------------------------------
# start NAME COMMAND...: run a daemon in its own session, its output in logs/NAME.log.
start() {
	local name=$1
	shift
	setsid "$@" </dev/null >"$DIR/logs/$name.log" 2>&1 &
	echo $! >"$DIR/run/$name.pid"
}
alive() { kill -0 "$(<"$DIR/run/$1.pid")" 2>/dev/null || die "$1 exited; see $DIR/logs/$1.log: $(tail -5 "$DIR/logs/$1.log")"; }

cat >"$DIR/etc/containerd.toml" <<EOC
version = 2
root = "$DIR/containerd/root"
state = "$DIR/containerd/state"
# No /opt/containerd, no snapshotters beyond overlayfs and native.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # This machine's root lacks CAP_SYS_RESOURCE: no oom_score_adj below containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$DIR/cni/net.d"
EOC
start containerd containerd --config "$DIR/etc/containerd.toml"
wait_for containerd 30 ctr version
for t in "$IMAGES"/*.tar; do ctr images import --no-unpack=false "$t" >/dev/null; done
log "containerd is up with $(ls "$IMAGES"/*.tar | xargs -n1 basename | tr '\n' ' ')"

start etcd "$KBIN/etcd" --name kubemail-e2e --data-dir "$DIR/etcd" \
	--listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
	--listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
	--initial-cluster "kubemail-e2e=http://127.0.0.1:$ETCD_PEER_PORT" --log-level warn

start kube-apiserver "$KBIN/kube-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
	--bind-address "$NODE_IP" --secure-port "$API_PORT" --advertise-address "$NODE_IP" \
	--service-cluster-ip-range "$SERVICE_CIDR" --authorization-mode Node,RBAC --allow-privileged=true \
	--client-ca-file "$pki/ca.crt" --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
	--service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
	--service-account-issuer https://kubernetes.default.svc.cluster.local \
	--kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
	--kubelet-certificate-authority "$pki/ca.crt" --kubelet-preferred-address-types InternalIP \
	--cert-dir "$DIR/pki/apiserver-generated"
wait_for "kube-apiserver /readyz" 60 kubectl get --raw /readyz
log "kube-apiserver is ready ($((SECONDS - start_time))s)"

start kube-controller-manager "$KBIN/kube-controller-manager" --kubeconfig "$pki/controller-manager.kubeconfig" \
	--authentication-kubeconfig "$pki/controller-manager.kubeconfig" --authorization-kubeconfig "$pki/controller-manager.kubeconfig" \
	--bind-address "$NODE_IP" --cert-dir "$DIR/pki/kcm-generated" --leader-elect=false \
	--use-service-account-credentials --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
	--cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" --controllers '*,-nodeipam'
start kube-scheduler "$KBIN/kube-scheduler" --kubeconfig "$pki/scheduler.kubeconfig" \
	--authentication-kubeconfig "$pki/scheduler.kubeconfig" --authorization-kubeconfig "$pki/scheduler.kubeconfig" \
	--bind-address "$NODE_IP" --cert-dir "$DIR/pki/scheduler-generated" --leader-elect=false

cat >"$DIR/etc/kubelet.yaml" <<EOC
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine has cgroup v1, which kubelet 1.37 runs on only when told to.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$SOCK
address: $NODE_IP
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $pki/kubelet.crt
tlsPrivateKeyFile: $pki/kubelet.key
failSwapOn: false
clusterDomain: cluster.local
clusterDNS: [$DNS_SERVICE_IP]
# Pods of dnsPolicy Default (CoreDNS) get no name server rather than the host's: no lookup
# leaves the bridge.
resolvConf: $DIR/etc/resolv.conf
podLogsDir: $DIR/kubelet/pod-logs
volumePluginDir: $DIR/kubelet/plugins
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
# Side-loaded images can never be pulled again: never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
EOC
: >"$DIR/etc/resolv.conf"
start kubelet "$KBIN/kubelet" --config "$DIR/etc/kubelet.yaml" --kubeconfig "$pki/kubelet.kubeconfig" \
	--root-dir "$DIR/kubelet/root" --cert-dir "$DIR/pki/kubelet-generated" \
	--hostname-override "$NODE_NAME" --node-ip "$NODE_IP"

cat >"$DIR/etc/kube-proxy.yaml" <<EOC
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $pki/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
bindAddress: $NODE_IP
healthzBindAddress: $NODE_IP:10256
metricsBindAddress: $NODE_IP:10249
nodePortAddresses: ["$NODE_IP/32"]
iptables: {localhostNodePorts: false}
# Leave the host's conntrack sysctls alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s, udpTimeout: 0s, udpStreamTimeout: 0s}
EOC
start kube-proxy "$KBIN/kube-proxy" --config "$DIR/etc/kube-proxy.yaml"

start provisioner "$REPO/bin/cluster-provisioner" --kubeconfig "$pki/provisioner.kubeconfig" \
	--dir "$DIR/volumes" --node "$NODE_NAME" --storage-class "$STORAGE_CLASS"

wait_for "node $NODE_NAME Ready" 90 bash -c "$(declare -f kubectl); KBIN=$KBIN; [[ \$(kubectl get node $NODE_NAME -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}') == True ]]"
for d in containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy provisioner; do alive "$d"; done
log "node $NODE_NAME is Ready ($((SECONDS - start_time))s)"

kubectl apply -f - >/dev/null <<EOC
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: $STORAGE_CLASS
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubemail.io/e2e-local
reclaimPolicy: Delete
volumeBindingMode: WaitForFirstConsumer
EOC
sed -e "s|@DNS_SERVICE_IP@|$DNS_SERVICE_IP|; s|@COREDNS_IMAGE@|$COREDNS_IMAGE|" "$REPO/hack/cluster/coredns.yaml" |
	kubectl apply -f - >/dev/null
kubectl -n kube-system rollout status deployment/coredns --timeout=90s >/dev/null || die "CoreDNS did not become ready"
log "CoreDNS is ready ($((SECONDS - start_time))s)"
wait_for "the default ServiceAccount" 60 kubectl get serviceaccount default -n default
wait_for "ConfigMap kube-root-ca.crt" 60 kubectl get configmap kube-root-ca.crt -n default
log "cluster is up in $((SECONDS - start_time))s: export KUBECONFIG=$KUBECONFIG"
