package controllers

import (
	"reflect"
	"testing"

	"github.com/kubemail/kubemail/api/v1alpha1"
)

// A policy routing mail to domains it also selects reaches each domain without the route to
// itself, so the server does not refuse it; the policy object itself is left unchanged.
func TestPolicyForDropsRoutesToTheDomainItself(t *testing.T) {
	rp := v1alpha1.RelayPolicy{Spec: v1alpha1.RelayPolicySpec{
		Domains: []string{"a.test", "B.test"},
		Routes: []v1alpha1.Route{
			{Domains: []string{"a.test", "c.test"}, Host: "relay-ac", Port: 25},
			{Domains: []string{"b.test."}, Host: "relay-b", Port: 25},
		},
	}}
	got, ok := policyFor(rp, "b.test")
	want := []v1alpha1.Route{{Domains: []string{"a.test", "c.test"}, Host: "relay-ac", Port: 25}}
	if !ok || !reflect.DeepEqual(got.Spec.Domains, []string{"b.test"}) || !reflect.DeepEqual(got.Spec.Routes, want) {
		t.Errorf("for b.test: ok=%v spec %+v, want domains [b.test] and routes %+v", ok, got.Spec, want)
	}
	got, _ = policyFor(rp, "a.test")
	want = []v1alpha1.Route{{Domains: []string{"c.test"}, Host: "relay-ac", Port: 25}, {Domains: []string{"b.test."}, Host: "relay-b", Port: 25}}
	if !reflect.DeepEqual(got.Spec.Routes, want) {
		t.Errorf("for a.test: routes %+v, want %+v", got.Spec.Routes, want)
	}
	if len(rp.Spec.Routes[0].Domains) != 2 || len(rp.Spec.Routes) != 2 {
		t.Errorf("the policy object was changed: %+v", rp.Spec)
	}
	if _, ok := policyFor(rp, "d.test"); ok {
		t.Error("a policy naming a.test and b.test applies to d.test")
	}
	all := v1alpha1.RelayPolicy{Spec: v1alpha1.RelayPolicySpec{Routes: []v1alpha1.Route{{Domains: []string{"d.test"}, Host: "h"}}}}
	if got, ok := policyFor(all, "d.test"); !ok || len(got.Spec.Domains) != 0 || len(got.Spec.Routes) != 0 {
		t.Errorf("policy for all domains, for d.test: ok=%v spec %+v, want it without its route to d.test", ok, got.Spec)
	}
}
