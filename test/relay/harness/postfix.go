package harness

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Postfix is a throwaway Postfix run as root from its own config, queue and data directories
// under a temp dir (the host's /etc/postfix is not touched), every daemon unchrooted. It
// accepts mail from 127.0.0.0/8 for anywhere (mynetworks), delivers its Mailboxes through
// virtual(8) as nobody into Maildirs, and sends the rest by Transport, else by Relayhost.
type Postfix struct {
	Addr      string            // listen IP:port
	Relayhost string            // e.g. "[127.1.2.9]:25"; empty: direct (MX lookups)
	Transport map[string]string // domain -> "smtp:[ip]:port"
	Mailboxes []string          // addresses delivered into Maildirs under Vmail
	// Main holds more main.cf lines (e.g. "default_destination_concurrency_limit = 50").
	Main []string

	Dir, Etc, Spool, Vmail string
	masterPID              int
}

// inet_interfaces is loopback-only: Postfix refuses an address no interface has, and only
// 127.0.0.1 is configured on lo (the rest of 127.0.0.0/8 is routed there); master.cf binds
// the service to Addr.
const postfixMainCF = `# Throwaway Postfix for kubemail's relay tests and outbound bench.
compatibility_level = 3.6
queue_directory = {{spool}}
data_directory = {{dir}}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = {{dir}}/maillog
maillog_file_prefixes = {{dir}}
myhostname = postfix-{{ip}}.localhost
mydomain = localhost
myorigin = $myhostname
mydestination =
relay_domains =
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_client_connection_count_limit = 0
smtp_dns_support_level = disabled
biff = no
virtual_mailbox_domains = {{vdomains}}
virtual_mailbox_base = {{vmail}}
virtual_mailbox_maps = texthash:{{etc}}/vmailbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_minimum_uid = 1
transport_maps = texthash:{{etc}}/transport
relayhost = {{relayhost}}
`

const postfixMasterCF = `# service type  private unpriv  chroot  wakeup  maxproc command
{{addr}} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`

// Start writes the config and runs `postfix -c DIR start`, then waits until Addr answers.
func (pf *Postfix) Start() error {
	dir, err := os.MkdirTemp("", "kubemail-relay-postfix-")
	if err != nil {
		return err
	}
	pf.Dir, pf.Etc, pf.Spool, pf.Vmail = dir, filepath.Join(dir, "etc"), filepath.Join(dir, "spool"), filepath.Join(dir, "vmail")
	// virtual(8) delivers as nobody, who must reach vmail/ through the temp dir.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	var vmailbox, transport strings.Builder
	domains := map[string]bool{}
	for _, d := range []string{pf.Etc, pf.Spool, pf.Vmail} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := os.Chown(pf.Vmail, 65534, 65534); err != nil {
		return err
	}
	for _, addr := range pf.Mailboxes {
		local, domain, _ := strings.Cut(addr, "@")
		fmt.Fprintf(&vmailbox, "%s %s/%s/\n", addr, domain, local)
		if !domains[domain] {
			domains[domain] = true
			if err := os.MkdirAll(filepath.Join(pf.Vmail, domain), 0o755); err != nil {
				return err
			}
			if err := os.Chown(filepath.Join(pf.Vmail, domain), 65534, 65534); err != nil {
				return err
			}
		}
	}
	var vdomains []string
	for d := range domains {
		vdomains = append(vdomains, d)
	}
	for d, t := range pf.Transport {
		fmt.Fprintf(&transport, "%s %s\n", d, t)
	}
	ip, _, err := net.SplitHostPort(pf.Addr)
	if err != nil {
		return err
	}
	subst := strings.NewReplacer("{{dir}}", dir, "{{etc}}", pf.Etc, "{{spool}}", pf.Spool, "{{vmail}}", pf.Vmail,
		"{{ip}}", ip, "{{addr}}", pf.Addr, "{{relayhost}}", pf.Relayhost, "{{vdomains}}", strings.Join(vdomains, " "))
	main := subst.Replace(postfixMainCF) + strings.Join(pf.Main, "\n") + "\n"
	files := map[string]string{"main.cf": main, "master.cf": subst.Replace(postfixMasterCF),
		"vmailbox": vmailbox.String(), "transport": transport.String()}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(pf.Etc, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	if out, err := exec.Command("/usr/sbin/postfix", "-c", pf.Etc, "start").CombinedOutput(); err != nil {
		log := pf.Log()
		pf.Stop()
		return fmt.Errorf("postfix start: %w: %s\nlog:\n%s", err, bytes.TrimSpace(out), log)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if pf.masterPID == 0 {
			pf.masterPID = pf.readMasterPID()
		}
		if c, err := net.DialTimeout("tcp", pf.Addr, time.Second); err == nil && pf.masterPID != 0 {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			pf.Stop()
			return fmt.Errorf("postfix did not listen on %s within 30s; log:\n%s", pf.Addr, pf.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (pf *Postfix) readMasterPID() int {
	b, err := os.ReadFile(filepath.Join(pf.Spool, "pid", "master.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// Log is Postfix's maillog.
func (pf *Postfix) Log() string {
	b, _ := os.ReadFile(filepath.Join(pf.Dir, "maillog"))
	return string(b)
}

// Maildir is the new/ directory of one of the Mailboxes.
func (pf *Postfix) Maildir(addr string) string {
	local, domain, _ := strings.Cut(addr, "@")
	return filepath.Join(pf.Vmail, domain, local, "new")
}

// Stop runs `postfix stop` (then `abort`), SIGKILLs every process of this instance that is
// left, checks none survives, and removes the temp dir unless keep is set.
func (pf *Postfix) Stop() error {
	if pf.Dir == "" {
		return nil
	}
	exec.Command("/usr/sbin/postfix", "-c", pf.Etc, "stop").Run()
	gone := pf.waitGone(20 * time.Second)
	if !gone {
		exec.Command("/usr/sbin/postfix", "-c", pf.Etc, "abort").Run()
		gone = pf.waitGone(5 * time.Second)
	}
	var err error
	if !gone {
		for _, p := range pf.processes() {
			syscall.Kill(p, syscall.SIGKILL)
		}
		if !pf.waitGone(5 * time.Second) {
			err = fmt.Errorf("postfix processes %v survive SIGKILL", pf.processes())
		} else {
			err = fmt.Errorf("postfix did not stop on `postfix stop` or `abort`; killed")
		}
	}
	if err == nil && os.Getenv("RELAY_KEEP") == "" {
		os.RemoveAll(pf.Dir)
	}
	return err
}

func (pf *Postfix) waitGone(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if len(pf.processes()) == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// processes lists the live processes of this instance: the master and every daemon, which all
// carry MAIL_CONFIG=<etc> in their environment.
func (pf *Postfix) processes() []int {
	want := []byte("MAIL_CONFIG=" + pf.Etc + "\x00")
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !alive(pid) {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err == nil && bytes.Contains(env, want) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z"
}

// MasterPID is the pid of the running master, or 0.
func (pf *Postfix) MasterPID() int {
	if pf.masterPID == 0 {
		pf.masterPID = pf.readMasterPID()
	}
	return pf.masterPID
}
