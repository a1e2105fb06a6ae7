//go:build cluster

package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// rollout is one change to the MailDomain that needs new pods, and how to see it in the pod.
type rollout struct {
	what  string
	patch string // a JSON merge patch of the MailDomain
	// field is a path (".spec.containers[0].image") in the StatefulSet's pod template and in
	// the pod; want its value once the change is rolled out.
	field, want string
}

// rollOut patches the MailDomain and waits as a user would: the operator carries the change
// into the StatefulSet, `kubectl rollout status` finishes, the new pod runs with the change and
// serves through the Service. It fails if the pod was not replaced.
func (e *env) rollOut(t *testing.T, r rollout, svc string) {
	t.Helper()
	oldUID := e.jsonpath(t, "{.metadata.uid}", "get", "pod", pod)
	e.k(t, "patch", "maildomain", domain, "--type=merge", "-p", r.patch)
	eventually(t, "the StatefulSet carries the new "+r.what, time.Minute, func() error {
		got, err := runErr(e.kubectl, "get", "statefulset", statefulSet, "-o", "jsonpath={.spec.template"+r.field+"}")
		if err != nil {
			return err
		}
		if strings.TrimSpace(got) != r.want {
			return fmt.Errorf("pod template has %q", got)
		}
		return nil
	})
	e.k(t, "rollout", "status", "statefulset/"+statefulSet, "--timeout=3m")
	e.k(t, "wait", "--for=condition=Ready", "pod/"+pod, "--timeout=2m")
	if uid := e.jsonpath(t, "{.metadata.uid}", "get", "pod", pod); uid == oldUID {
		t.Fatalf("the rollout of the new %s finished without replacing %s", r.what, pod)
	}
	if got := e.jsonpath(t, "{"+r.field+"}", "get", "pod", pod); got != r.want {
		t.Fatalf("after the rollout %s has %s %q, want %q", pod, r.what, got, r.want)
	}
	e.waitServiceServes(t, domain, svc, pod)
}

// mailKept reads alice's INBOX through the Service and fails unless the messages with the
// subjects are there with the UIDs, UIDVALIDITY and contents they had in before.
func mailKept(t *testing.T, python, imapRead, svc, caFile string, before inbox, after string, subjects ...string) {
	t.Helper()
	out := run(t, python, imapRead, svc, "143", mailHost, "dump", "alice@example.test", "alice-password", caFile)
	var now inbox
	decode(t, out, &now)
	if now.UIDValidity != before.UIDValidity {
		t.Errorf("UIDVALIDITY changed after %s: %d -> %d", after, before.UIDValidity, now.UIDValidity)
	}
	for _, s := range subjects {
		uid0, sha0, _ := before.bySubject(s)
		uid1, sha1, ok := now.bySubject(s)
		switch {
		case !ok:
			t.Errorf("message %q is gone after %s; INBOX: %+v", s, after, now.Messages)
		case uid1 != uid0 || sha1 != sha0:
			t.Errorf("message %q: UID %d sha256 %s before %s, UID %d sha256 %s after", s, uid0, sha0, after, uid1, sha1)
		}
	}
}

// nextImage is the second name hack/images/build.sh gives the kubemail image.
func nextImage(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "bin", "cluster-images", "kubemail-next.image"))
	if err != nil {
		t.Fatalf("the second kubemail image name (hack/images/build.sh): %v", err)
	}
	return strings.TrimSpace(string(b))
}

// events returns the Events table `kubectl describe` prints for the object.
func (e *env) events(t *testing.T, kind, name string) string {
	t.Helper()
	out := e.k(t, "describe", kind, name)
	i := strings.Index(out, "\nEvents:")
	if i < 0 {
		t.Fatalf("kubectl describe %s %s prints no Events section:\n%s", kind, name, out)
	}
	return out[i+1:]
}

// eventSays reports whether a row of the Events table has the type and reason.
func eventSays(events, typ, reason string) bool {
	for _, line := range strings.Split(events, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == typ && f[1] == reason {
			return true
		}
	}
	return false
}
