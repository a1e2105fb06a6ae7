package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kubemail/kubemail/test/relay/harness"
)

// openDKIM is a Debian opendkim (the milter most Postfix sites sign with) signing a.test's mail
// as kubemail does: RSA-2048, relaxed/relaxed, the fields of msgauth's signedFields with From
// oversigned, for mail from 127.0.0.0/8.
type openDKIM struct {
	cmd    *exec.Cmd
	out    bytes.Buffer
	exited chan struct{}
	Milter string // for Postfix's smtpd_milters: inet:IP:PORT
}

const openDKIMBin = "/usr/sbin/opendkim"

func startOpenDKIM(dir string) (*openDKIM, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	keyFile := filepath.Join(dir, "a.test.key")
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(keyFile, pemKey, 0o600); err != nil {
		return nil, err
	}
	ip := harness.IP(11)
	port := 8891
	conf := fmt.Sprintf(`Syslog no
Mode s
Domain a.test
Selector kubemail
KeyFile %s
Canonicalization relaxed/relaxed
SignatureAlgorithm rsa-sha256
SignHeaders From,To,Cc,Subject,Date,Message-ID,Reply-To,MIME-Version,Content-Type,Content-Transfer-Encoding,In-Reply-To,References
OversignHeaders From
InternalHosts 127.0.0.0/8
Socket inet:%d@%s
PidFile %s
Background no
`, keyFile, port, ip, filepath.Join(dir, "opendkim.pid"))
	confFile := filepath.Join(dir, "opendkim.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	d := &openDKIM{exited: make(chan struct{}), Milter: fmt.Sprintf("inet:%s:%d", ip, port)}
	d.cmd = exec.Command(openDKIMBin, "-f", "-x", confFile)
	d.cmd.Stdout, d.cmd.Stderr = &d.out, &d.out
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting opendkim: %w", err)
	}
	go func() { d.cmd.Wait(); close(d.exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, fmt.Sprint(port)), time.Second); err == nil {
			c.Close()
			return d, nil
		}
		select {
		case <-d.exited:
			return nil, fmt.Errorf("opendkim exited: %s", strings.TrimSpace(d.out.String()))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.Stop()
			return nil, fmt.Errorf("opendkim did not listen within 10s: %s", d.out.String())
		}
	}
}

// PID is the daemon's process ID.
func (d *openDKIM) PID() int { return d.cmd.Process.Pid }

func (d *openDKIM) Stop() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(5 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
	}
}
