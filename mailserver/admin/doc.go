// Package admin is the running mail server's local administration endpoint, and the client
// that `kubemail queue` uses to reach it.
//
// # Transport: a unix socket in the data dir
//
// The server listens on <data>/admin.sock, a unix domain socket with mode 0600 owned by the
// server's user, inside the data dir (mode 0700). Whoever can open the socket may administer the
// server: the file permissions are the authentication, as with Postfix's public/ and private/
// sockets and Docker's docker.sock. So there is no password, token or TLS to configure, and
// nothing is reachable over the network: a TCP port, even on loopback, would be open to every
// local user (and, in a pod, to every container sharing its network namespace) and would need
// its own authentication. In Kubernetes the same command works through the pod:
//
//	kubectl exec deploy/kubemail -- kubemail queue list --data-dir /var/lib/kubemail
//
// The socket is made without a window in which others could connect: it is bound in a fresh
// mode-0700 directory inside the data dir, set to 0600, then renamed into place. A socket left
// by a server that died is replaced; one that answers belongs to a running server using the same
// data dir, and Listen refuses to start a second. Unix socket paths are limited to 107 bytes
// on Linux, so the data dir path must be shorter than about 90.
//
// # API: HTTP/1.1 with JSON bodies
//
//	GET    /v1/queue             {"messages":[Message…]}, oldest first
//	POST   /v1/queue/{id}/retry  make the message due now: {"retried":1}
//	POST   /v1/queue/retry       make every queued message due now: {"retried":n}
//	DELETE /v1/queue/{id}        remove the message without a notice: {"deleted":1}
//
// Errors are {"error":"…"} with 404 for an unknown queue ID, 400 for a malformed request and
// 500 otherwise. Message (below) is the wire form; it carries the queue's metadata record (see
// package queue) and whether an attempt is running. New operations get new paths under /v1;
// fields are only ever added.
package admin
