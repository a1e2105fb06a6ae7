package main

import (
	"context"
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

// The throwaway Postfix runs as root from its own directories, delivering through virtual(8) as
// nobody into Maildirs under vmail/. Every daemon runs unchrooted so nothing needs copying into
// the queue directory.
const postfixMainCF = `# Throwaway Postfix for kubemail's bench; nothing here touches /etc/postfix.
compatibility_level = 3.6
queue_directory = {{spool}}
data_directory = {{data}}
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = {{tmp}}/maillog
maillog_file_prefixes = {{tmp}}
myhostname = postfix-bench.localhost
mydomain = localhost
myorigin = $myhostname
mydestination =
relay_domains =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_client_connection_count_limit = 0
biff = no
virtual_mailbox_domains = example.test
virtual_mailbox_base = {{vmail}}
virtual_mailbox_maps = texthash:{{etc}}/vmailbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_minimum_uid = 1
`

const postfixMasterCF = `# service type  private unpriv  chroot  wakeup  maxproc command
127.0.0.1:{{port}} inet n - n - - smtpd
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

// runPostfix measures the throwaway Postfix under the same load.
func runPostfix(o options, sessions int) (r result) {
	r = result{server: "postfix", sessions: sessions, messages: o.messages}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()

	pf, err := newPostfix(o)
	if pf != nil {
		defer pf.cleanup(o.keep)
	}
	if err != nil {
		r.err = err
		return r
	}
	if err := pf.start(); err != nil {
		r.err = err
		return r
	}
	defer func() {
		if err := pf.stop(); err != nil && r.err == nil {
			r.err = err
		}
		r.cpu = pf.cpu
	}()

	stopSampling := sampleMax(&r.loadMem, func() int64 { return treePSS(pf.masterPID) })
	local, domain, _ := strings.Cut(o.recipient, "@")
	newDir := filepath.Join(pf.vmail, domain, local, "new")
	start := time.Now()
	r.sent, r.err = smtpSource(ctx, o, sessions, pf.addr)
	var derr error
	waitCtx, cancelWait := deliveryContext(ctx, r.err)
	r.delivered, r.count, derr = waitDelivered(waitCtx, newDir, o.messages, start)
	cancelWait()
	if r.err == nil {
		r.err = derr
	}
	if r.err != nil {
		r.err = fmt.Errorf("%w (Postfix log: %s)", r.err, filepath.Join(pf.tmp, "maillog"))
	}
	stopSampling()
	return r
}

type postfix struct {
	cmd       string
	tmp, etc  string
	spool     string
	vmail     string
	addr      string
	masterPID int
	cpu       time.Duration // master and daemons, summed as they are reaped
}

func newPostfix(o options) (*postfix, error) {
	tmp, err := os.MkdirTemp("", "postfix-bench-")
	if err != nil {
		return nil, err
	}
	pf := &postfix{cmd: o.postfix, tmp: tmp, etc: filepath.Join(tmp, "etc"),
		spool: filepath.Join(tmp, "spool"), vmail: filepath.Join(tmp, "vmail")}
	// virtual(8) delivers as nobody, who must reach vmail/ through the temp dir.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return pf, err
	}
	_, domain, _ := strings.Cut(o.recipient, "@")
	for _, d := range []string{pf.etc, pf.spool, filepath.Join(pf.vmail, domain)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return pf, err
		}
	}
	for _, d := range []string{pf.vmail, filepath.Join(pf.vmail, domain)} {
		if err := os.Chown(d, 65534, 65534); err != nil {
			return pf, err
		}
	}
	port, err := freePort()
	if err != nil {
		return pf, err
	}
	pf.addr = "127.0.0.1:" + port
	subst := strings.NewReplacer("{{tmp}}", tmp, "{{etc}}", pf.etc, "{{spool}}", pf.spool,
		"{{data}}", filepath.Join(tmp, "data"), "{{vmail}}", pf.vmail, "{{port}}", port)
	files := map[string]string{
		"main.cf":   subst.Replace(postfixMainCF),
		"master.cf": subst.Replace(postfixMasterCF),
		"vmailbox":  fmt.Sprintf("%s %s/%s/\n", o.recipient, domain, strings.Split(o.recipient, "@")[0]),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(pf.etc, name), []byte(content), 0o644); err != nil {
			return pf, err
		}
	}
	return pf, nil
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	return port, err
}

// start runs `postfix -c etc start` and waits until the SMTP port answers.
func (pf *postfix) start() error {
	out, err := exec.Command(pf.cmd, "-c", pf.etc, "start").CombinedOutput()
	if err != nil {
		return fmt.Errorf("postfix start: %w: %s", err, strings.TrimSpace(string(out)))
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if pf.masterPID == 0 {
			pf.masterPID = pf.readMasterPID()
		}
		if c, err := net.DialTimeout("tcp", pf.addr, time.Second); err == nil && pf.masterPID != 0 {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postfix did not listen on %s within 30s (log: %s/maillog)", pf.addr, pf.tmp)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (pf *postfix) readMasterPID() int {
	b, err := os.ReadFile(filepath.Join(pf.spool, "pid", "master.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// stop runs `postfix stop`, falls back to `postfix abort` and then to SIGKILL of the master and
// its children, and checks that no process of this instance survives.
func (pf *postfix) stop() error {
	if pf.masterPID == 0 {
		pf.masterPID = pf.readMasterPID()
	}
	exec.Command(pf.cmd, "-c", pf.etc, "stop").Run()
	if pf.waitGone(20 * time.Second) {
		return nil
	}
	exec.Command(pf.cmd, "-c", pf.etc, "abort").Run()
	if pf.waitGone(5 * time.Second) {
		return nil
	}
	if pf.masterPID != 0 {
		for _, k := range append(childrenOf(pf.masterPID), childrenOf(os.Getpid())...) {
			syscall.Kill(k, syscall.SIGKILL)
		}
		syscall.Kill(pf.masterPID, syscall.SIGKILL)
	}
	defer func() { pf.cpu += reapAll() }()
	if pf.waitGone(5 * time.Second) {
		return fmt.Errorf("postfix did not stop on `postfix stop` or `abort`; killed master %d", pf.masterPID)
	}
	return fmt.Errorf("postfix master %d survives SIGKILL", pf.masterPID)
}

// waitGone polls until the master and every daemon of it are gone, reaping them as they exit.
func (pf *postfix) waitGone(timeout time.Duration) bool {
	if pf.masterPID == 0 {
		return true
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		pf.cpu += reapAll()
		// Daemons the master left behind are reparented to this process (the subreaper).
		if !alive(pf.masterPID) && !anyAlive(childrenOf(pf.masterPID)) && !anyAlive(childrenOf(os.Getpid())) {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
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

func (pf *postfix) cleanup(keep bool) {
	if keep {
		fmt.Printf("  postfix: kept %s\n", pf.tmp)
		return
	}
	os.RemoveAll(pf.tmp)
}

func anyAlive(pids []int) bool {
	for _, p := range pids {
		if alive(p) {
			return true
		}
	}
	return false
}
