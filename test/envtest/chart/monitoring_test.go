//go:build envtest

package chart

import (
	"bufio"
	"bytes"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers"
	"github.com/kubemail/kubemail/controllers/builder"
	"github.com/kubemail/kubemail/mailserver/metrics"
	"github.com/kubemail/kubemail/mailserver/server"
)

// Just the parts of the Prometheus Operator's resources the tests read.
type podMonitor struct {
	Metadata metav1.ObjectMeta `json:"metadata"`
	Spec     struct {
		NamespaceSelector struct {
			Any        bool     `json:"any"`
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Selector            metav1.LabelSelector `json:"selector"`
		PodMetricsEndpoints []struct {
			Port        string `json:"port"`
			Path        string `json:"path"`
			Interval    string `json:"interval"`
			HonorLabels bool   `json:"honorLabels"`
		} `json:"podMetricsEndpoints"`
	} `json:"spec"`
}

type prometheusRule struct {
	Metadata metav1.ObjectMeta `json:"metadata"`
	Spec     struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Expr        string            `json:"expr"`
				For         string            `json:"for"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// helmTemplate renders the chart with args; it returns the objects by kind, and the error output.
func helmTemplate(t *testing.T, args ...string) (map[string][][]byte, string, error) {
	t.Helper()
	helm := os.Getenv("HELM_BIN")
	if helm == "" {
		t.Fatal("HELM_BIN is not set: run `make test-chart`, which builds bin/helm")
	}
	root, err := filepath.Abs("../../..")
	must(t, err)
	cmd := exec.Command(helm, append([]string{"template", release, filepath.Join(root, "charts", "kubemail"), "--namespace", namespace}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, stderr.String(), err
	}
	byKind := map[string][][]byte{}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(out)))
	for {
		doc, err := r.Read()
		if err == io.EOF {
			break
		}
		must(t, err)
		var meta metav1.TypeMeta
		must(t, yaml.Unmarshal(doc, &meta))
		if meta.Kind != "" {
			byKind[meta.Kind] = append(byKind[meta.Kind], doc)
		}
	}
	return byKind, "", nil
}

var monitoringOn = []string{"--set", "metrics.podMonitor.enabled=true", "--set", "metrics.prometheusRule.enabled=true",
	"--set", "metrics.podMonitor.labels.release=prom", "--set", "metrics.prometheusRule.labels.release=prom"}

// mailPodTemplate is the pod template the operator gives a MailDomain's mail server.
func mailPodTemplate(t *testing.T, name string) corev1.PodTemplateSpec {
	t.Helper()
	md := &v1alpha1.MailDomain{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "mail-" + name},
		Spec: v1alpha1.MailDomainSpec{Domain: name + ".test"}}
	sts, err := builder.BuildStatefulSet(md, builder.Options{Image: "registry.test/kubemail:chart-test"})
	must(t, err)
	return sts.Spec.Template
}

func selects(t *testing.T, sel metav1.LabelSelector, labels map[string]string) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(&sel)
	must(t, err)
	return !s.Empty() && s.Matches(labelSet(labels))
}

type labelSet map[string]string

func (l labelSet) Has(k string) bool              { _, ok := l[k]; return ok }
func (l labelSet) Get(k string) string            { return l[k] }
func (l labelSet) Lookup(k string) (string, bool) { v, ok := l[k]; return v, ok }

// The PodMonitors select exactly the mail server pods the operator makes (by the labels all of
// them share, whatever the MailDomain) and the chart's operator pod, on ports those pods have.
func TestChartPodMonitors(t *testing.T) {
	objs, _, err := helmTemplate(t, monitoringOn...)
	must(t, err)
	if len(objs["PodMonitor"]) != 2 {
		t.Fatalf("rendered %d PodMonitors, want 2 (mail servers, operator)", len(objs["PodMonitor"]))
	}
	var deploy appsv1.Deployment
	must(t, yaml.Unmarshal(objs["Deployment"][0], &deploy))
	operatorPod := deploy.Spec.Template
	a, b := mailPodTemplate(t, "example-a"), mailPodTemplate(t, "example-b")
	// What every mail server pod carries, whichever its MailDomain.
	common := map[string]string{}
	for k, v := range a.Labels {
		if b.Labels[k] == v {
			common[k] = v
		}
	}
	mon := map[string]podMonitor{}
	for _, doc := range objs["PodMonitor"] {
		var pm podMonitor
		must(t, yaml.Unmarshal(doc, &pm))
		if pm.Metadata.Labels["release"] != "prom" {
			t.Errorf("PodMonitor %s labels %v lack metrics.podMonitor.labels", pm.Metadata.Name, pm.Metadata.Labels)
		}
		if pm.Metadata.Namespace != namespace {
			t.Errorf("PodMonitor %s in namespace %q, want the release's", pm.Metadata.Name, pm.Metadata.Namespace)
		}
		mon[pm.Metadata.Name] = pm
	}
	mail, ok := mon[release+"-mail-servers"]
	if !ok {
		t.Fatalf("no PodMonitor %s-mail-servers among %v", release, slices.Collect(maps.Keys(mon)))
	}
	if !maps.Equal(mail.Spec.Selector.MatchLabels, common) || len(mail.Spec.Selector.MatchExpressions) != 0 {
		t.Errorf("the mail servers' PodMonitor selects %v, want the labels every mail server pod has: %v",
			mail.Spec.Selector.MatchLabels, common)
	}
	for _, pod := range []corev1.PodTemplateSpec{a, b} {
		if !selects(t, mail.Spec.Selector, pod.Labels) {
			t.Errorf("the mail servers' PodMonitor does not select a mail pod labelled %v", pod.Labels)
		}
	}
	if selects(t, mail.Spec.Selector, operatorPod.Labels) {
		t.Errorf("the mail servers' PodMonitor selects the operator pod %v", operatorPod.Labels)
	}
	if !mail.Spec.NamespaceSelector.Any {
		t.Errorf("the mail servers' PodMonitor looks only in %v: MailDomains live in any namespace", mail.Spec.NamespaceSelector.MatchNames)
	}
	checkEndpoint(t, mail, a.Spec.Containers)

	op, ok := mon[release+"-operator"]
	if !ok {
		t.Fatalf("no PodMonitor %s-operator among %v", release, slices.Collect(maps.Keys(mon)))
	}
	if !selects(t, op.Spec.Selector, operatorPod.Labels) || selects(t, op.Spec.Selector, a.Labels) {
		t.Errorf("the operator's PodMonitor selector %v must select the operator pod %v and not mail pods %v",
			op.Spec.Selector.MatchLabels, operatorPod.Labels, a.Labels)
	}
	if !slices.Equal(op.Spec.NamespaceSelector.MatchNames, []string{namespace}) {
		t.Errorf("the operator's PodMonitor looks in %v, want the release namespace", op.Spec.NamespaceSelector.MatchNames)
	}
	checkEndpoint(t, op, operatorPod.Spec.Containers)
	// The operator's gauge of each MailDomain carries the MailDomain's namespace: Prometheus
	// would rename it to exported_namespace, and the DNS alert name the operator's namespace.
	if !op.Spec.PodMetricsEndpoints[0].HonorLabels {
		t.Errorf("the operator's PodMonitor does not honor the labels of %s (namespace is the MailDomain's)", controllers.DNSPublishedMetric)
	}

	// Restricted to the MailDomains' namespaces when asked.
	objs, _, err = helmTemplate(t, append(monitoringOn, "--set", "metrics.podMonitor.namespaces={mail-a,mail-b}")...)
	must(t, err)
	var restricted podMonitor
	for _, doc := range objs["PodMonitor"] {
		must(t, yaml.Unmarshal(doc, &restricted))
		if restricted.Metadata.Name == mail.Metadata.Name {
			break
		}
	}
	if restricted.Spec.NamespaceSelector.Any || !slices.Equal(restricted.Spec.NamespaceSelector.MatchNames, []string{"mail-a", "mail-b"}) {
		t.Errorf("metrics.podMonitor.namespaces: namespaceSelector %+v", restricted.Spec.NamespaceSelector)
	}
}

// checkEndpoint checks that pm scrapes /metrics on a named port of containers.
func checkEndpoint(t *testing.T, pm podMonitor, containers []corev1.Container) {
	t.Helper()
	if len(pm.Spec.PodMetricsEndpoints) != 1 {
		t.Fatalf("PodMonitor %s has %d endpoints, want 1", pm.Metadata.Name, len(pm.Spec.PodMetricsEndpoints))
	}
	ep := pm.Spec.PodMetricsEndpoints[0]
	var names []string
	for _, c := range containers {
		for _, p := range c.Ports {
			names = append(names, p.Name)
		}
	}
	if !slices.Contains(names, ep.Port) || ep.Path != "/metrics" || ep.Interval != "30s" {
		t.Errorf("PodMonitor %s scrapes port %q path %q every %q: want /metrics every 30s on one of the pod's ports %v",
			pm.Metadata.Name, ep.Port, ep.Path, ep.Interval, names)
	}
}

var kubemailMetric = regexp.MustCompile(`\bkubemail_[a-z0-9_]+`)
var jobMatcher = regexp.MustCompile(`job="([^"]*)"`)

// Every kubemail metric an alert uses exists in the mail server's registry or the manager's
// (renaming one fails here), every alert tells the operator what to do, and the jobs are the
// PodMonitors'.
func TestChartPrometheusRule(t *testing.T) {
	objs, _, err := helmTemplate(t, monitoringOn...)
	must(t, err)
	if len(objs["PrometheusRule"]) != 1 {
		t.Fatalf("rendered %d PrometheusRules, want 1", len(objs["PrometheusRule"]))
	}
	var rule prometheusRule
	must(t, yaml.Unmarshal(objs["PrometheusRule"][0], &rule))
	if rule.Metadata.Labels["release"] != "prom" {
		t.Errorf("PrometheusRule labels %v lack metrics.prometheusRule.labels", rule.Metadata.Labels)
	}
	jobs := map[string]bool{namespace + "/" + release + "-mail-servers": true, namespace + "/" + release + "-operator": true}
	// The mail server's metrics and the manager's own (controllers registers them with
	// controller-runtime's registry).
	known := metrics.Names(append(server.MetricCollectors(nil, nil), controllers.MetricCollectors()...)...)
	if !slices.Contains(known, controllers.DNSPublishedMetric) {
		t.Errorf("the known metrics %v lack the manager's %s", known, controllers.DNSPublishedMetric)
	}
	used := map[string]bool{}
	alerts := map[string]bool{}
	queueList := builder.Binary + " queue list --data-dir " + builder.DataDir
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert+"/"+r.Labels["severity"]] = true
			for _, name := range kubemailMetric.FindAllString(r.Expr, -1) {
				used[name] = true
				base := name
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(name, suffix); ok && slices.Contains(known, b) {
						base = b
					}
				}
				if !slices.Contains(known, base) {
					t.Errorf("alert %s uses %s, which neither the mail server nor the manager exports (they have %v)", r.Alert, name, known)
				}
			}
			m := jobMatcher.FindAllStringSubmatch(r.Expr, -1)
			if len(m) == 0 {
				t.Errorf("alert %s selects no job: %s", r.Alert, r.Expr)
			}
			for _, j := range m {
				if !jobs[j[1]] {
					t.Errorf("alert %s selects job %q, not one of the PodMonitors' %v", r.Alert, j[1], jobs)
				}
			}
			if r.Annotations["summary"] == "" || len(r.Annotations["description"]) < 80 || r.For == "" {
				t.Errorf("alert %s needs a summary, a description saying what to do and a for: %+v", r.Alert, r)
			}
			queueAlert := strings.Contains(r.Expr, "kubemail_queue_oldest_message_age_seconds") ||
				strings.Contains(r.Expr, "kubemail_queue_delivery_attempts_total")
			if strings.Contains(r.Expr, controllers.DNSPublishedMetric) && !strings.Contains(r.Annotations["description"], "kubectl -n {{ $labels.namespace }} describe maildomain {{ $labels.maildomain }}") {
				t.Errorf("DNS alert %s does not tell how to see which record is wrong (kubectl describe maildomain): %s", r.Alert, r.Annotations["description"])
			}
			if queueAlert && !strings.Contains(r.Annotations["description"], queueList) {
				t.Errorf("queue alert %s does not tell how to list the queue (%q): %s", r.Alert, queueList, r.Annotations["description"])
			}
		}
	}
	if len(used) < 5 {
		t.Errorf("the alerts use only %v: the check above checked next to nothing", used)
	}
	for _, want := range []string{"KubemailQueueOldMessage/warning", "KubemailQueueOldMessage/critical", "KubemailBouncesHigh/warning",
		"KubemailDeliveryMostlyDeferred/warning", "KubemailMailServerDown/critical", "KubemailMailServersAbsent/critical",
		"KubemailTLSCertificateExpiring/warning", "KubemailTLSCertificateExpiring/critical",
		"KubemailOperatorReconcileErrors/warning", "KubemailMailboxQuotaRefusals/info", "KubemailDNSRecordsWrong/warning"} {
		if !alerts[want] {
			t.Errorf("no alert %s among %v", want, slices.Sorted(maps.Keys(alerts)))
		}
	}
}

// Monitoring is off by default, and the schema refuses what it does not know under metrics.
func TestChartMonitoringValues(t *testing.T) {
	objs, _, err := helmTemplate(t)
	must(t, err)
	if len(objs["PodMonitor"])+len(objs["PrometheusRule"]) != 0 {
		t.Errorf("the defaults render %d PodMonitors and %d PrometheusRules, want none (Prometheus Operator CRDs may be missing)",
			len(objs["PodMonitor"]), len(objs["PrometheusRule"]))
	}
	for bad, key := range map[string]string{"metrics.prometheusrule.enabled=true": "prometheusrule",
		"metrics.podMonitor.intervall=1m": "intervall", "metrics.prometheusRule.severity=page": "severity"} {
		_, stderr, err := helmTemplate(t, "--set", bad)
		if err == nil || !strings.Contains(stderr, key) {
			t.Errorf("--set %s: err = %v, output %q: want the schema to name %q", bad, err, stderr, key)
		}
	}
	if _, stderr, err := helmTemplate(t, "--set", "metrics.prometheusRule.enabled=true"); err == nil || !strings.Contains(stderr, "podMonitor") {
		t.Errorf("alerts without the PodMonitors their jobs refer to: err = %v, output %q", err, stderr)
	}
}
