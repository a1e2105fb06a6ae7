package config

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

const groupBase = `
apiVersion: mail.kubemail.io/v1alpha1
kind: MailDomain
metadata: {name: example-test}
spec: {domain: example.test}
---
apiVersion: mail.kubemail.io/v1alpha1
kind: Mailbox
metadata: {name: alice}
spec: {address: alice@example.test, aliases: [postmaster@example.test], passwordSecretRef: {name: pw, key: password}}
---
apiVersion: mail.kubemail.io/v1alpha1
kind: Mailbox
metadata: {name: bob}
spec: {address: bob@example.test, aliases: [robert@example.test], passwordSecretRef: {name: pw, key: password}}
---
apiVersion: v1
kind: Secret
metadata: {name: pw}
stringData: {password: secret}
`

func TestGroupsResolveAndExpand(t *testing.T) {
	dir := writeManifests(t, map[string]string{"base.yaml": groupBase, "groups.yaml": `
apiVersion: mail.kubemail.io/v1alpha1
kind: MailGroup
metadata: {name: team}
spec:
  address: Team@Example.test
  members: [alice@example.test, robert@example.test, Someone@Gmail.COM, all@example.test]
  acceptFrom: Members
---
apiVersion: mail.kubemail.io/v1alpha1
kind: MailGroup
metadata: {name: all}
spec: {address: all@example.test, members: [bob+lists@example.test, carol@elsewhere.test]}
`})
	cfg, err := LoadManifests(dir, plainHasher)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Groups) != 2 {
		t.Fatalf("groups = %+v", cfg.Groups)
	}
	all, team := cfg.Groups[0], cfg.Groups[1]
	if all.AcceptFrom != "Anyone" || team.AcceptFrom != "Members" || team.Address != "team@example.test" {
		t.Errorf("groups = %+v", cfg.Groups)
	}
	// bob reached as robert and as bob+lists through the nested group: one copy.
	want := []string{"alice@example.test", "bob@example.test", "Someone@gmail.com", "carol@elsewhere.test"}
	if !slices.Equal(team.Expanded, want) {
		t.Errorf("team expands to %q, want %q", team.Expanded, want)
	}
	d := NewDirectory(cfg)
	if g := d.Group("TEAM+news@example.test"); g == nil || g.Address != "team@example.test" {
		t.Errorf("Group(team+news) = %+v", g)
	}
	if d.Lookup("team@example.test") != nil {
		t.Error("a group address reaches a mailbox")
	}
	// Bounces to the group's address go to the postmaster (alice's alias), never to members.
	if g := d.Group(team.BounceAddress()); g != nil {
		t.Errorf("the bounce address %s is the group %+v", team.BounceAddress(), g)
	}
	if mb := d.Lookup("team+bounces@example.test"); mb == nil || mb.Address != "alice@example.test" {
		t.Errorf("Lookup(team+bounces) = %+v, want the postmaster's mailbox", mb)
	}
}

func TestGroupErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct{ name, groups, want string }{
		{"loop", `
apiVersion: mail.kubemail.io/v1alpha1
kind: MailGroup
metadata: {name: a}
spec: {address: a@example.test, members: [alice@example.test, b@example.test]}
---
apiVersion: mail.kubemail.io/v1alpha1
kind: MailGroup
metadata: {name: b}
spec: {address: b@example.test, members: [a@example.test]}
`, `MailGroup "default/a": spec.members[1]: group loop: a@example.test → b@example.test → a@example.test`},
		{"alias collision", `
apiVersion: mail.kubemail.io/v1alpha1
kind: MailGroup
metadata: {name: rob}
spec: {address: robert@example.test, members: [alice@example.test]}
`, `MailGroup "default/rob": spec.address: address "robert@example.test" is already taken by Mailbox default/bob`},
		{"unknown domain", `
apiVersion: mail.kubemail.io/v1alpha1
kind: MailGroup
metadata: {name: other}
spec: {address: team@other.test, members: [alice@example.test]}
`, `MailGroup "default/other": spec.address: domain "other.test" of "team@other.test" is not served by any MailDomain`},
		{"unknown local member", `
apiVersion: mail.kubemail.io/v1alpha1
kind: MailGroup
metadata: {name: team}
spec: {address: team@example.test, members: [alice@example.test, nobody@example.test]}
`, `MailGroup "default/team": spec.members[1]: "nobody@example.test" is in domain "example.test" served here but is no Mailbox's address or alias, nor a MailGroup's`},
		{"group collision", `
apiVersion: mail.kubemail.io/v1alpha1
kind: MailGroup
metadata: {name: one}
spec: {address: team@example.test, members: [alice@example.test]}
---
apiVersion: mail.kubemail.io/v1alpha1
kind: MailGroup
metadata: {name: two}
spec: {address: team@example.test, members: [bob@example.test]}
`, `MailGroup "default/two": spec.address: address "team@example.test" is already taken by MailGroup default/one`},
		{"acceptFrom", `
apiVersion: mail.kubemail.io/v1alpha1
kind: MailGroup
metadata: {name: team}
spec: {address: team@example.test, members: [alice@example.test], acceptFrom: Friends}
`, `spec.acceptFrom: "Friends" is not one of Anyone, Members, Domain`},
		{"bad member", `
apiVersion: mail.kubemail.io/v1alpha1
kind: MailGroup
metadata: {name: team}
spec: {address: team@example.test, members: ["user%relay@elsewhere.test"]}
`, `spec.members[0]: local part of "user%relay@elsewhere.test" has the character '%'`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeManifests(t, map[string]string{"base.yaml": groupBase, "groups.yaml": tc.groups})
			_, err := LoadManifests(dir, plainHasher)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v\nwant it to contain %s", err, tc.want)
			}
			if !strings.Contains(err.Error(), "groups.yaml (document ") {
				t.Errorf("error does not name the file and document: %v", err)
			}
		})
	}
}

func TestGroupExpansionIsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString(groupBase)
	for _, name := range []string{"g1", "g2"} {
		b.WriteString("---\napiVersion: mail.kubemail.io/v1alpha1\nkind: MailGroup\nmetadata: {name: " + name + "}\nspec:\n  address: " + name + "@example.test\n  members:\n")
		for i := range 600 {
			b.WriteString("  - " + name + "-" + strings.Repeat("x", i%3+1) + strconv.Itoa(i) + "@elsewhere.test\n")
		}
	}
	b.WriteString("---\napiVersion: mail.kubemail.io/v1alpha1\nkind: MailGroup\nmetadata: {name: both}\nspec: {address: both@example.test, members: [g1@example.test, g2@example.test]}\n")
	dir := writeManifests(t, map[string]string{"all.yaml": b.String()})
	_, err := LoadManifests(dir, plainHasher)
	if err == nil || !strings.Contains(err.Error(), `MailGroup "default/both": spec.members[1]: expands to more than 1000 addresses`) {
		t.Fatalf("error = %v", err)
	}
}
