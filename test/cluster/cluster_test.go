//go:build cluster

package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	namespace             = "kubemail-system" // the operator's, as the chart's README installs it
	domain                = "example-test"    // config/samples: MailDomain example.test
	mailHost              = "mail.example.test"
	statefulSet, pod, pvc = domain, domain + "-0", "data-" + domain + "-0"
)

// TestMailSystem installs the chart, applies the samples, and uses the mail domain from the host:
// SMTP to the MX port, submission with AUTH, IMAP with STARTTLS; adds a second MailDomain and
// mails between the two; adds and deletes a Mailbox on the running server; deletes the mail pod
// and reads the same mail with the same UIDs from its successor on the same volume; rolls out a
// change of the MailDomain's resources and then of its image, again with the mail intact; finally
// upgrades and uninstalls the release, which keeps the CRDs, the objects and the mail.
func TestMailSystem(t *testing.T) {
	e := newEnv(t)
	swaks := lookPath(t, "swaks")
	python := lookPath(t, "python3")
	imapRead := filepath.Join(repoRoot, "test", "cluster", "testdata", "imap_read.py")
	nonce := fmt.Sprint(time.Now().UnixNano())
	mxSubject, subSubject := "MX delivery "+nonce, "Submission "+nonce

	e.phase(t, "helm install, operator Ready", func(t *testing.T) {
		run(t, e.helm, "install", "kubemail", "charts/kubemail", "--namespace", namespace, "--create-namespace",
			"--wait", "--timeout", "3m")
		e.k(t, "-n", namespace, "rollout", "status", "deployment/kubemail", "--timeout=2m")
		e.k(t, "-n", namespace, "wait", "--for=condition=Ready", "pod",
			"-l", "app.kubernetes.io/instance=kubemail,app.kubernetes.io/component=operator", "--timeout=2m")
	})

	e.phase(t, "apply samples, mail pod Ready", func(t *testing.T) {
		e.k(t, "apply", "-f", "config/samples/")
		e.k(t, "wait", "--for=condition=Ready", "maildomain/"+domain, "--timeout=2m")
		e.k(t, "wait", "--for=condition=Ready", "mailboxes", "--all", "--timeout=2m")
		e.k(t, "rollout", "status", "statefulset/"+statefulSet, "--timeout=2m")
		e.k(t, "wait", "--for=condition=Ready", "pod/"+pod, "--timeout=2m")
		e.k(t, "wait", "--for=jsonpath={.status.phase}=Bound", "pvc/"+pvc, "--timeout=1m")
		table := e.k(t, "get", "maildomains,mailboxes")
		t.Logf("kubectl get maildomains,mailboxes:\n%s", table)
		for _, name := range []string{domain, "alice-example-test", "bob-example-test"} {
			if !rowSays(table, name, "True") {
				t.Errorf("kubectl get maildomains,mailboxes: %s is not Ready:\n%s", name, table)
			}
		}
		types := e.jsonpath(t, "{.status.dnsRecords[*].type}", "get", "maildomain", domain)
		for _, want := range []string{"MX", "TXT"} {
			if !strings.Contains(" "+types+" ", " "+want+" ") {
				t.Errorf("MailDomain status names DNS records of types %q, want a %s record", types, want)
			}
		}
	})

	svc := e.jsonpath(t, "{.spec.clusterIP}", "get", "service", domain)
	tmp := t.TempDir() // the parent's: subtest names have commas, which kubectl -f splits on
	caFile := filepath.Join(tmp, "server.pem")
	var before inbox

	e.phase(t, "SMTP and submission, then IMAP STARTTLS", func(t *testing.T) {
		e.waitServiceServes(t, domain, svc, pod)
		// The MX takes mail for a local mailbox from anyone (STARTTLS offered and used).
		out := run(t, swaks, "--server", svc, "--port", "25", "--tls", "--helo", "client.remote.test",
			"--from", "sender@remote.test", "--to", "alice@example.test", "--header", "Subject: "+mxSubject,
			"--body", "Delivered through the MailDomain's Service.", "--timeout", "30")
		requireAccepted(t, out, "MX delivery")
		// Submission needs AUTH, after STARTTLS.
		out = run(t, swaks, "--server", svc, "--port", "587", "--tls", "--auth", "PLAIN",
			"--auth-user", "bob@example.test", "--auth-password", "bob-password", "--helo", "bob.example.test",
			"--from", "bob@example.test", "--to", "alice@example.test", "--header", "Subject: "+subSubject,
			"--body", "Submitted with AUTH.", "--timeout", "30")
		requireReply(t, out, "235", "AUTH")
		requireAccepted(t, out, "submission")
		// What the administrator reads: the server logged both deliveries.
		logs := e.k(t, "logs", "pod/"+pod)
		for _, from := range []string{"sender@remote.test", "bob@example.test"} {
			if !logSays(logs, "Accepted message", from) {
				t.Errorf("kubectl logs %s: no \"Accepted message\" line for the mail from %s:\n%s", pod, from, logs)
			}
		}
		// The first contact accepts the server's certificate; every later one verifies it.
		pem := run(t, python, imapRead, svc, "143", mailHost, "cert")
		if err := os.WriteFile(caFile, []byte(pem), 0o600); err != nil {
			t.Fatal(err)
		}
		eventually(t, "both messages in alice's INBOX", 30*time.Second, func() error {
			out, err := runErr(python, imapRead, svc, "143", mailHost, "dump", "alice@example.test", "alice-password", caFile)
			if err != nil {
				return err
			}
			before = inbox{}
			decode(t, out, &before)
			for _, s := range []string{mxSubject, subSubject} {
				if _, _, ok := before.bySubject(s); !ok {
					return fmt.Errorf("no message %q in %+v", s, before.Messages)
				}
			}
			return nil
		})
	})

	e.phase(t, "a second MailDomain, mail both ways", func(t *testing.T) {
		manifest := filepath.Join(tmp, "other.yaml")
		if err := os.WriteFile(manifest, []byte(otherDomain), 0o600); err != nil {
			t.Fatal(err)
		}
		e.k(t, "apply", "-f", manifest)
		e.k(t, "wait", "--for=condition=Ready", "maildomain/other-test", "--timeout=2m")
		e.k(t, "wait", "--for=condition=Ready", "mailbox/dave-other-test", "--timeout=2m")
		e.k(t, "rollout", "status", "statefulset/other-test", "--timeout=2m")
		e.k(t, "wait", "--for=condition=Ready", "pod/other-test-0", "--timeout=2m")
		otherSvc := e.jsonpath(t, "{.spec.clusterIP}", "get", "service", "other-test")
		e.waitServiceServes(t, "other-test", otherSvc, "other-test-0")
		otherCA := filepath.Join(tmp, "other.pem")
		pem := run(t, python, imapRead, otherSvc, "143", "mail.other.test", "cert")
		if err := os.WriteFile(otherCA, []byte(pem), 0o600); err != nil {
			t.Fatal(err)
		}
		// alice submits to dave: example.test's server looks up other.test's MX (CoreDNS:
		// other-test.default.svc.cluster.local) and delivers to that Service, pod to pod.
		subject := "Across domains " + nonce
		out := run(t, swaks, "--server", svc, "--port", "587", "--tls", "--auth", "PLAIN",
			"--auth-user", "alice@example.test", "--auth-password", "alice-password", "--helo", "alice.example.test",
			"--from", "alice@example.test", "--to", "dave@other.test", "--header", "Subject: "+subject,
			"--body", "From one MailDomain to another.", "--timeout", "30")
		requireAccepted(t, out, "submission to dave@other.test")
		waitForMessage(t, python, imapRead, otherSvc, "mail.other.test", "dave@other.test", "dave-password", otherCA, subject)
		if logs := e.k(t, "logs", "pod/"+pod); !logSays(logs, "Delivery attempted", "dave@other.test") {
			t.Errorf("kubectl logs %s: no \"Delivery attempted\" line for dave@other.test:\n%s", pod, logs)
		}
		// And back: dave submits at other.test's server to bob.
		reply := "Re: " + subject
		out = run(t, swaks, "--server", otherSvc, "--port", "587", "--tls", "--auth", "PLAIN",
			"--auth-user", "dave@other.test", "--auth-password", "dave-password", "--helo", "dave.other.test",
			"--from", "dave@other.test", "--to", "bob@example.test", "--header", "Subject: "+reply,
			"--body", "And back.", "--timeout", "30")
		requireAccepted(t, out, "submission to bob@example.test")
		waitForMessage(t, python, imapRead, svc, mailHost, "bob@example.test", "bob-password", caFile, reply)
	})

	e.phase(t, "add a Mailbox, log in; delete it, refused", func(t *testing.T) {
		oldUID := e.jsonpath(t, "{.metadata.uid}", "get", "pod", pod)
		login := func() (bool, string) {
			out := run(t, python, imapRead, svc, "143", mailHost, "login", "carol@example.test", "carol-password", caFile)
			var r struct {
				OK    bool   `json:"ok"`
				Error string `json:"error"`
			}
			decode(t, out, &r)
			return r.OK, r.Error
		}
		if ok, _ := login(); ok {
			t.Fatal("carol@example.test logs in before her Mailbox exists")
		}
		manifest := filepath.Join(tmp, "carol.yaml")
		if err := os.WriteFile(manifest, []byte(carolMailbox), 0o600); err != nil {
			t.Fatal(err)
		}
		added := time.Now()
		e.k(t, "apply", "-f", manifest)
		eventually(t, "carol@example.test can log in", mailboxPropagation, func() error {
			if ok, msg := login(); !ok {
				return fmt.Errorf("login refused: %s", msg)
			}
			return nil
		})
		t.Logf("carol@example.test logged in %v after the Mailbox was applied", time.Since(added).Round(time.Second))
		if events := e.events(t, "mailbox", "carol-example-test"); !eventSays(events, "Normal", "Active") {
			t.Errorf("kubectl describe mailbox carol-example-test shows no Normal Active event:\n%s", events)
		}
		if logs := e.k(t, "logs", "pod/"+pod); !logSays(logs, "Reloaded config", "mailboxes") {
			t.Errorf("kubectl logs %s: no \"Reloaded config\" line after carol's Mailbox was applied:\n%s", pod, logs)
		}
		out := run(t, swaks, "--server", svc, "--port", "25", "--tls", "--helo", "client.remote.test",
			"--from", "sender@remote.test", "--to", "carol@example.test", "--header", "Subject: For carol "+nonce,
			"--body", "Removed with her Mailbox.", "--timeout", "30")
		requireAccepted(t, out, "MX delivery to carol")
		deleted := time.Now()
		e.k(t, "delete", "mailbox", "carol-example-test", "--wait=true", "--timeout=1m")
		eventually(t, "carol@example.test is refused", mailboxPropagation, func() error {
			if ok, _ := login(); ok {
				return fmt.Errorf("login still accepted")
			}
			return nil
		})
		t.Logf("carol@example.test was refused %v after the Mailbox was deleted", time.Since(deleted).Round(time.Second))
		// reclaimPolicy: Delete: the running server removed her Maildir and said so.
		eventually(t, "the server logs carol's purge", mailboxPropagation, func() error {
			if logs := e.k(t, "logs", "pod/"+pod); !logSays(logs, "Purged a deleted mailbox", "carol@example.test") {
				return fmt.Errorf("no \"Purged a deleted mailbox\" line for carol@example.test")
			}
			return nil
		})
		if uid := e.jsonpath(t, "{.metadata.uid}", "get", "pod", pod); uid != oldUID {
			t.Errorf("the mail pod was replaced (%s -> %s): a Mailbox change must not restart it", oldUID, uid)
		}
		if n := e.jsonpath(t, "{.status.containerStatuses[0].restartCount}", "get", "pod", pod); n != "0" {
			t.Errorf("the mail server container restarted %s times", n)
		}
	})

	e.phase(t, "delete the mail pod, mail and UIDs kept", func(t *testing.T) {
		oldUID := e.jsonpath(t, "{.metadata.uid}", "get", "pod", pod)
		volume := e.jsonpath(t, "{.spec.volumeName}", "get", "pvc", pvc)
		e.k(t, "delete", "pod", pod, "--wait=true", "--timeout=2m")
		eventually(t, "the StatefulSet recreates "+pod, 2*time.Minute, func() error {
			uid, err := runErr(e.kubectl, "get", "pod", pod, "-o", "jsonpath={.metadata.uid}")
			if err != nil {
				return err
			}
			if uid == oldUID {
				return fmt.Errorf("%s is still the old pod %s", pod, oldUID)
			}
			return nil
		})
		e.k(t, "wait", "--for=condition=Ready", "pod/"+pod, "--timeout=2m")
		e.waitServiceServes(t, domain, svc, pod)
		if v := e.jsonpath(t, "{.spec.volumeName}", "get", "pvc", pvc); v != volume {
			t.Errorf("PVC %s is bound to %s after the restart, was %s", pvc, v, volume)
		}
		mailKept(t, python, imapRead, svc, caFile, before, "the pod restart", mxSubject, subSubject)
		// What the administrator reads in kubectl describe: the domain went unready and came back.
		events := e.events(t, "maildomain", domain)
		for _, ev := range [][2]string{{"Warning", "PodsNotReady"}, {"Normal", "Available"}} {
			if !eventSays(events, ev[0], ev[1]) {
				t.Errorf("kubectl describe maildomain %s shows no %s %s event:\n%s", domain, ev[0], ev[1], events)
			}
		}
	})

	e.phase(t, "MailDomain resources, then image: rolled out, mail kept", func(t *testing.T) {
		for _, r := range []rollout{{
			what:  "resources",
			patch: `{"spec":{"resources":{"requests":{"cpu":"50m","memory":"128Mi"},"limits":{"memory":"512Mi"}}}}`,
			field: ".spec.containers[0].resources.limits.memory", want: "512Mi",
		}, {
			what:  "image",
			patch: `{"spec":{"image":"` + nextImage(t) + `"}}`,
			field: ".spec.containers[0].image", want: nextImage(t),
		}} {
			e.rollOut(t, r, svc)
			mailKept(t, python, imapRead, svc, caFile, before, "the rollout of the new "+r.what, mxSubject, subSubject)
		}
	})

	e.phase(t, "helm upgrade, then uninstall: CRDs and mail kept", func(t *testing.T) {
		operatorPods := "-l=app.kubernetes.io/instance=kubemail,app.kubernetes.io/component=operator"
		oldPods := strings.Fields(e.jsonpath(t, "{.items[*].metadata.name}", "-n", namespace, "get", "pods", operatorPods))
		run(t, e.helm, "upgrade", "kubemail", "charts/kubemail", "--namespace", namespace, "--reuse-values",
			"--set", "logFormat=text", "--wait", "--timeout", "3m")
		e.k(t, "-n", namespace, "rollout", "status", "deployment/kubemail", "--timeout=2m")
		// Then only the new pod is left for kubectl logs to pick.
		for _, p := range oldPods {
			e.k(t, "-n", namespace, "wait", "--for=delete", "pod/"+p, "--timeout=2m")
		}
		if logs := e.k(t, "-n", namespace, "logs", "deployment/kubemail"); !strings.Contains(logs, "level=INFO") {
			t.Errorf("after helm upgrade --set logFormat=text the operator does not log text:\n%s", logs)
		}
		run(t, e.helm, "uninstall", "kubemail", "--namespace", namespace, "--wait", "--timeout", "2m")
		if out, err := runErr(e.kubectl, "-n", namespace, "get", "deployment", "kubemail"); err == nil {
			t.Errorf("the operator's Deployment is still there after helm uninstall:\n%s", out)
		}
		for _, crd := range []string{"maildomains", "mailboxes", "mailgroups", "relaypolicies"} {
			e.k(t, "get", "crd", crd+".mail.kubemail.io")
		}
		table := e.k(t, "get", "maildomains,mailboxes")
		for _, name := range []string{domain, "other-test", "alice-example-test", "dave-other-test"} {
			if !strings.Contains(table, "/"+name+" ") {
				t.Errorf("%s is gone after helm uninstall:\n%s", name, table)
			}
		}
		// The mail servers do not depend on the operator: alice still reads her mail.
		out := run(t, python, imapRead, svc, "143", mailHost, "dump", "alice@example.test", "alice-password", caFile)
		var b inbox
		decode(t, out, &b)
		if _, _, ok := b.bySubject(mxSubject); !ok {
			t.Errorf("alice's mail is gone after helm uninstall: %+v", b.Messages)
		}
	})
}

// mailboxPropagation bounds how long a Mailbox change takes to reach the running mail server.
// It travels through the operator into the pod's projected ConfigMap/Secret volume; the operator
// then patches the pod's mail.kubemail.io/config-hash annotation, which makes the kubelet rewrite
// the volume at once instead of on its periodic sync (up to 90 s), and the server reloads within
// its 2 s poll. Measured 3-6 s here; the test logs the time taken.
const mailboxPropagation = 30 * time.Second

const carolMailbox = `apiVersion: mail.kubemail.io/v1alpha1
kind: Mailbox
metadata: {name: carol-example-test}
spec:
  address: carol@example.test
  passwordSecretRef: {name: carol-pw, key: password}
  reclaimPolicy: Delete
---
apiVersion: v1
kind: Secret
metadata: {name: carol-pw}
stringData: {password: carol-password}
`

// otherDomain is a second MailDomain with one Mailbox; the Mailbox comes first so that the
// domain's first pod already serves it.
const otherDomain = `apiVersion: mail.kubemail.io/v1alpha1
kind: Mailbox
metadata: {name: dave-other-test}
spec:
  address: dave@other.test
  passwordSecretRef: {name: dave-pw, key: password}
---
apiVersion: v1
kind: Secret
metadata: {name: dave-pw}
stringData: {password: dave-password}
---
apiVersion: mail.kubemail.io/v1alpha1
kind: MailDomain
metadata: {name: other-test}
spec:
  domain: other.test
`

// waitForMessage waits until the message with the subject is in user's INBOX: mail relayed
// between servers arrives through the sender's queue, a moment after the submission's 250.
func waitForMessage(t *testing.T, python, imapRead, host, servername, user, password, caFile, subject string) {
	t.Helper()
	eventually(t, "message "+subject+" in "+user+"'s INBOX", time.Minute, func() error {
		out, err := runErr(python, imapRead, host, "143", servername, "dump", user, password, caFile)
		if err != nil {
			return err
		}
		var b inbox
		decode(t, out, &b)
		if _, _, ok := b.bySubject(subject); !ok {
			return fmt.Errorf("not among %d messages", len(b.Messages))
		}
		return nil
	})
}

// logSays reports whether one log line has the message and mentions the address.
func logSays(logs, msg, address string) bool {
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `"msg":"`+msg+`"`) && strings.Contains(line, address) {
			return true
		}
	}
	return false
}

// rowSays reports whether the table row of name has the column value want.
func rowSays(table, name, want string) bool {
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasSuffix(f[0], "/"+name) {
			for _, c := range f[1:] {
				if c == want {
					return true
				}
			}
		}
	}
	return false
}

// requireReply fails unless swaks saw a server reply with the code.
func requireReply(t *testing.T, out, code, what string) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimLeft(line, "<~ "), code+" ") && strings.HasPrefix(line, "<") {
			return
		}
	}
	t.Fatalf("%s: no %s reply; swaks output:\n%s", what, code, out)
}

// requireAccepted fails unless the server answered the end of DATA (the "." line) with 250.
func requireAccepted(t *testing.T, out, what string) {
	t.Helper()
	lines := strings.Split(out, "\n")
	for i, line := range lines[:len(lines)-1] {
		if l := strings.TrimSpace(line); (l == "-> ." || l == "~> .") && strings.Contains(lines[i+1], " 250 ") {
			return
		}
	}
	t.Fatalf("%s: the message was not accepted; swaks output:\n%s", what, out)
}

func lookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed (make test-deps): %v", name, err)
	}
	return p
}
