//go:build envtest

package envtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers"
)

func withAutoReply(mb *v1alpha1.Mailbox, ar *v1alpha1.AutoReply) *v1alpha1.Mailbox {
	mb.Spec.AutoReply = ar
	return mb
}

// The API server refuses a bad spec.autoReply naming the field, and the operator carries a
// good one into the config the mail server loads.
func TestAutoReplyValidationAndConfig(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	start := metav1.NewTime(time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC))
	before := metav1.NewTime(start.Add(-time.Hour))
	for _, tc := range []struct {
		name string
		ar   *v1alpha1.AutoReply
		want string
	}{
		{"end before start", &v1alpha1.AutoReply{Body: "away", Start: &start, End: &before}, "spec.autoReply.end must be after spec.autoReply.start"},
		{"end equals start", &v1alpha1.AutoReply{Body: "away", Start: &start, End: &start}, "spec.autoReply.end must be after"},
		{"interval 1h", &v1alpha1.AutoReply{Body: "away", Interval: &metav1.Duration{Duration: time.Hour}}, "spec.autoReply.interval must be at least 24h"},
		{"no body", &v1alpha1.AutoReply{Subject: "x"}, "spec.autoReply.body"},
		{"body over 10 KiB", &v1alpha1.AutoReply{Body: strings.Repeat("x", 10241)}, "spec.autoReply.body"},
		{"subject on two lines", &v1alpha1.AutoReply{Body: "away", Subject: "a\r\nBcc: x@example.net"}, "spec.autoReply.subject"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := k8s.Create(ctx, withAutoReply(mailbox(ns, "bad-autoreply", "alice@away.test", "alice-pw"), tc.ar))
			if err == nil {
				t.Fatalf("the API server accepted %s", tc.name)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
		})
	}

	must(t, k8s.Create(ctx, mailDomain(ns, "away-test", "away.test")))
	must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "alice-pw"},
		StringData: map[string]string{"password": "alice-password"}}))
	end := metav1.NewTime(start.Add(5 * 24 * time.Hour))
	must(t, k8s.Create(ctx, withAutoReply(mailbox(ns, "alice", "alice@away.test", "alice-pw"), &v1alpha1.AutoReply{
		Subject: "Out of office", Body: "I am away until 2 December.", Start: &start, End: &end,
		Interval: &metav1.Duration{Duration: 48 * time.Hour}})))
	mailboxReady(t, ns, "alice", metav1.ConditionTrue, controllers.ReasonActive)
	eventually(t, "alice's autoReply in the server's config", func() error {
		cfg, err := serverConfig(t, ns, "away-test")
		if err != nil {
			return err
		}
		for _, mb := range cfg.Mailboxes {
			if mb.Address != "alice@away.test" {
				continue
			}
			ar := mb.AutoReply
			if ar == nil || ar.Subject != "Out of office" || ar.Body != "I am away until 2 December." ||
				!ar.Start.Equal(start.Time) || !ar.End.Equal(end.Time) || ar.Interval != 48*time.Hour {
				return fmt.Errorf("alice's AutoReply = %+v", ar)
			}
			return nil
		}
		return fmt.Errorf("no mailbox alice@away.test in %+v", cfg.Mailboxes)
	})
}
